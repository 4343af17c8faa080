/**
 * Timing primitives shared by every service: one copy of each, here.
 */
import { ErrorCode, TetherError } from "../errors/index.ts";

export interface SleepOptions {
  /** Ends the wait early; the promise then resolves with false. */
  readonly signal?: AbortSignal | undefined;
  /** False lets the process exit while the timer is pending, as `timer.unref()`. Default true. */
  readonly ref?: boolean;
}

/**
 * Waits `ms` milliseconds. Resolves with true when the time passed and with false when
 * `options.signal` aborted first (at once when it already has); it never rejects, so a retry
 * loop reads "stop waiting" from the value instead of catching the abort reason.
 */
export function sleep(ms: number, options: SleepOptions = {}): Promise<boolean> {
  const { signal, ref = true } = options;
  if (signal?.aborted === true) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    if (!ref) timer.unref();
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Settles as `promise` does, or rejects with a retryable `timeout` TetherError naming `what`
 * once `ms` passed first. The timer is cleared either way. `promise` itself goes on running (a
 * promise cannot be cancelled); its late outcome is dropped, a late rejection included.
 */
export function withTimeout<T>(promise: PromiseLike<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TetherError(ErrorCode.Timeout, `${what} took longer than ${ms} ms`, { details: { ms } })),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface BackoffOptions {
  /** The delay before the first retry, before jitter. */
  readonly baseMs: number;
  /** The largest delay, before jitter. */
  readonly maxMs: number;
  /**
   * Share of the delay that is random, 0 to 1: the delay is uniform in
   * [ceiling * (1 - jitter), ceiling]. 1 is "full jitter" (0 to the ceiling), 0.5 gives 50 to
   * 100% of it, 0 none. Default 0.
   */
  readonly jitter?: number;
  /** Source of randomness in [0, 1); Math.random when omitted. */
  readonly random?: () => number;
}

/**
 * The delay before retry number `attempt` (1 for the first): `baseMs * 2^(attempt - 1)`, capped
 * at `maxMs`, then lowered by a random share of at most `jitter`. Rounded to whole
 * milliseconds. The exponent stops growing at 30, so a long outage never overflows to Infinity.
 */
export function backoff(attempt: number, options: BackoffOptions): number {
  const { baseMs, maxMs, jitter = 0, random = Math.random } = options;
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(maxMs, baseMs * 2 ** exponent);
  return Math.round(ceiling * (1 - jitter * random()));
}

export interface LimiterOptions {
  /** Most calls running at once; a positive whole number. */
  readonly concurrency: number;
  /**
   * Most calls waiting for a turn. Past it `run` rejects with `unavailable` at once instead of
   * queueing; 0 never queues. Unbounded when omitted.
   */
  readonly maxQueued?: number;
}

/** Gives back a turn taken with {@link Limiter.tryAcquire}; calling it again does nothing. */
export type Release = () => void;

/**
 * Bounds how many calls run at once. Calls past the bound wait in arrival order and start as
 * earlier ones settle, so a burst is spread over time instead of failing; the time a call
 * spends waiting is not part of the call.
 */
export class Limiter {
  readonly #concurrency: number;
  readonly #maxQueued: number;
  readonly #waiting: (() => void)[] = [];
  #active = 0;

  constructor(options: LimiterOptions) {
    const { concurrency, maxQueued = Number.POSITIVE_INFINITY } = options;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new TetherError(ErrorCode.InvalidArgument, "limiter concurrency must be a positive whole number");
    }
    if (maxQueued !== Number.POSITIVE_INFINITY && (!Number.isInteger(maxQueued) || maxQueued < 0)) {
      throw new TetherError(ErrorCode.InvalidArgument, "limiter queue bound must be a whole number from 0");
    }
    this.#concurrency = concurrency;
    this.#maxQueued = maxQueued;
  }

  /** Calls running now. */
  get active(): number {
    return this.#active;
  }

  /** Calls waiting for a turn. */
  get queued(): number {
    return this.#waiting.length;
  }

  /**
   * Runs `fn` once a turn is free and settles as it does. Rejects with a retryable
   * `unavailable` TetherError, without calling `fn`, when the queue is full.
   */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const release = this.tryAcquire();
    if (release !== null) return settle(fn, release);
    if (this.#waiting.length >= this.#maxQueued) {
      return Promise.reject(
        new TetherError(ErrorCode.Unavailable, `too many calls waiting (${this.#waiting.length} queued)`),
      );
    }
    return new Promise<T>((resolve, reject) => {
      this.#waiting.push(() => {
        settle(fn, this.#take()).then(resolve, reject);
      });
    });
  }

  /**
   * Takes a turn without waiting, for work that does not fit in one function (it starts in one
   * callback and ends in another): a release function, or null when every turn is taken.
   * Queued `run` calls go first, so a free turn is never taken from one of them.
   */
  tryAcquire(): Release | null {
    if (this.#active >= this.#concurrency || this.#waiting.length > 0) return null;
    return this.#take();
  }

  #take(): Release {
    this.#active += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#active -= 1;
      this.#waiting.shift()?.();
    };
  }
}

async function settle<T>(fn: () => Promise<T>, release: Release): Promise<T> {
  try {
    return await fn();
  } finally {
    release();
  }
}

/**
 * Waits until `done()` holds or the clock reaches `deadline` (both in the clock's milliseconds),
 * checking every 20 ms at most; resolves either way. For shutdowns that give work in flight a
 * bounded time to finish.
 */
export async function pollUntil(done: () => boolean, deadline: number, now: () => number = Date.now): Promise<void> {
  while (!done() && now() < deadline) await sleep(Math.min(20, Math.max(1, deadline - now())));
}
