/**
 * Timing primitives shared by every service: one copy of each, here.
 */
import { ErrorCode, TetherError } from "../errors/index.ts";

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
