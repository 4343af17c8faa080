import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from "fastify";
import { ApiError } from "./errors.ts";

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

/** How many failed authentications one source address may make. */
export interface AuthFailureLimits {
  /** Failures allowed in a burst. */
  readonly burst: number;
  /** Failures regained per second, up to `burst`. */
  readonly perSecond: number;
  /** Most addresses tracked at once; past it the least recently failing one is forgotten. */
  readonly maxSources: number;
}

export const DEFAULT_AUTH_FAILURE_LIMITS: AuthFailureLimits = { burst: 10, perSecond: 1, maxSources: 10_000 };

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * A token bucket per source address, spent by failed authentications. Only addresses that have
 * failed are tracked, and an address whose bucket has filled up again is dropped, so the map holds
 * recent offenders only, never more than `maxSources` of them.
 */
export class AuthFailureLimiter {
  readonly #limits: AuthFailureLimits;
  readonly #buckets = new Map<string, Bucket>();

  constructor(limits: AuthFailureLimits) {
    if (!(limits.burst >= 1 && limits.perSecond > 0 && limits.maxSources >= 1)) {
      throw new Error("auth failure limits need burst >= 1, perSecond > 0 and maxSources >= 1");
    }
    this.#limits = limits;
  }

  /** Addresses tracked now. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Milliseconds until `source` may try again; 0 when it may now. */
  waitMs(source: string, now: number): number {
    const bucket = this.#refilled(source, now);
    if (bucket === undefined || bucket.tokens >= 1) return 0;
    return Math.ceil(((1 - bucket.tokens) / this.#limits.perSecond) * 1000);
  }

  /** Spends one of `source`'s failures. */
  fail(source: string, now: number): void {
    const bucket = this.#refilled(source, now) ?? { tokens: this.#limits.burst, at: now };
    bucket.tokens -= 1;
    // Re-inserted so that the map's order is least recently failing first.
    this.#buckets.delete(source);
    if (this.#buckets.size >= this.#limits.maxSources) {
      const oldest = this.#buckets.keys().next();
      if (oldest.done !== true) this.#buckets.delete(oldest.value);
    }
    this.#buckets.set(source, bucket);
  }

  #refilled(source: string, now: number): Bucket | undefined {
    const bucket = this.#buckets.get(source);
    if (bucket === undefined) return undefined;
    const elapsed = Math.max(0, now - bucket.at) / 1000;
    bucket.tokens = Math.min(this.#limits.burst, bucket.tokens + elapsed * this.#limits.perSecond);
    bucket.at = now;
    if (bucket.tokens >= this.#limits.burst) {
      this.#buckets.delete(source);
      return undefined;
    }
    return bucket;
  }
}

export interface BearerAuthOptions {
  /** Failed attempts per source address; none when omitted. */
  readonly failures?: AuthFailureLimiter;
  /** Clock in ms; `Date.now` when omitted. */
  readonly now?: () => number;
}

/**
 * A hook that lets a request through only with `Authorization: Bearer <token>`. Both sides are
 * hashed first so that the comparison takes the same time whatever the length or content of
 * the presented token.
 *
 * With `failures`, an address that has used up its failed attempts is refused with 429 before
 * its token is looked at, so that a right guess cannot be told apart from a wrong one while it
 * waits.
 */
export function bearerAuth(token: string, options: BearerAuthOptions = {}): onRequestHookHandler {
  if (token === "") throw new Error("the admin token must not be empty");
  const expected = digest(token);
  const { failures, now = Date.now } = options;
  return function checkBearer(request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void): void {
    if (failures !== undefined) {
      const waitMs = failures.waitMs(request.ip, now());
      if (waitMs > 0) {
        const retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1000));
        done(new ApiError("rate_limited", "too many failed authentications from this address", { retryAfterSeconds }));
        return;
      }
    }
    const header = request.headers.authorization;
    const match = typeof header === "string" ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
    const presented = match?.[1];
    if (presented !== undefined && timingSafeEqual(digest(presented), expected)) {
      done();
      return;
    }
    failures?.fail(request.ip, now());
    done(new ApiError("unauthorized", "missing or wrong bearer token"));
  };
}
