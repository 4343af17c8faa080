import type { FastifyReply, FastifyRequest, onRequestHookHandler } from "fastify";
import type { Limiter } from "../../shared/async/index.ts";
import { ApiError } from "./errors.ts";

/** Requests in flight unless configured otherwise. */
export const DEFAULT_MAX_CONCURRENCY = 256;

/** What an overloaded API tells a client to wait before trying again, in seconds. */
const OVERLOADED_RETRY_AFTER_SECONDS = 1;

/**
 * A hook that bounds the requests in flight: one past `limiter`'s bound is refused with 429
 * `overloaded` at once, before any work, rather than queued behind the others. A request holds
 * its turn until its response closes (sent, or the client went away). Routes whose template is
 * in `exempt` (health and metrics) are never refused: an orchestrator must still see the process
 * alive while it sheds load.
 */
export function admissionControl(limiter: Limiter, exempt: ReadonlySet<string>): onRequestHookHandler {
  return function admit(request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void): void {
    const route = request.routeOptions.url;
    if (route !== undefined && exempt.has(route)) {
      done();
      return;
    }
    const release = limiter.tryAcquire();
    if (release === null) {
      done(
        new ApiError("overloaded", "too many requests in flight; retry later", {
          retryAfterSeconds: OVERLOADED_RETRY_AFTER_SECONDS,
        }),
      );
      return;
    }
    reply.raw.once("close", release);
    done();
  };
}
