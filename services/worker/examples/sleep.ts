import { HandlerError } from "../handler-error.ts";
import type { Worker } from "../worker.ts";

/** The longest wait a `sleep` request may ask for; the handler timeout applies on top. */
const MAX_SLEEP_MS = 60_000;

/**
 * `sleep`: waits `body.ms` milliseconds, then answers `body.value` (or null). Holds answers in
 * flight for fault tests; a stand-in for a handler that calls a slow backend.
 */
export function registerSleep(worker: Worker): Worker {
  return worker.handle("sleep", async (request) => {
    const body = request.body;
    const ms = typeof body === "object" && body !== null ? (body as { ms?: unknown }).ms : undefined;
    if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 0 || ms > MAX_SLEEP_MS) {
      throw new HandlerError("invalid_input", `body.ms must be an integer from 0 to ${MAX_SLEEP_MS}`);
    }
    await new Promise((resolve) => setTimeout(resolve, ms));
    return (body as { value?: unknown }).value ?? null;
  });
}
