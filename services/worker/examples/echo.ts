import type { Worker } from "../worker.ts";

/** `echo`: answers the request's body unchanged. The embedded mode always serves it. */
export function registerEcho(worker: Worker): Worker {
  return worker.handle("echo", (request) => request.body);
}
