/**
 * Handler runs under the worker's deadline, with no timer and no AbortController made per run:
 * at thousands of requests a second both showed in the worker's profile, and most handlers
 * never look at their signal.
 */
import { Deadlines } from "../../shared/async/deadlines.ts";
import { ErrorCode, TetherError } from "../../shared/errors/index.ts";

/** One run: its deadline, how it ended, and its signal once the handler asked for it. */
interface Run {
  readonly deadline: number;
  readonly timeoutMs: number;
  settled: boolean;
  settle: (timedOut: boolean) => void;
  controller: AbortController | undefined;
  /** Why the run was aborted; set once. */
  reason: unknown;
}

/** What {@link HandlerRuns.start} gives the handler and the caller. */
export interface StartedRun<T> {
  /** The body's outcome, or `timedOut` once the deadline passed first. */
  readonly outcome: Promise<T>;
  /** The body's own outcome, however late. */
  readonly late: Promise<T>;
}

export class HandlerRuns {
  readonly #timeoutMs: number;
  readonly #live = new Set<Run>();
  readonly #deadlines: Deadlines<Run>;
  readonly #shutdown: AbortSignal;

  /**
   * `timeoutMs` bounds every run (checked every tenth of it, 5 to 100 ms); `shutdown` aborts
   * every run still going.
   */
  constructor(timeoutMs: number, shutdown: AbortSignal) {
    this.#timeoutMs = timeoutMs;
    this.#shutdown = shutdown;
    this.#deadlines = new Deadlines<Run>(
      (run) => {
        abort(run, new TetherError(ErrorCode.Timeout, "handler deadline passed"));
        run.settle(true);
      },
      Math.min(100, Math.max(5, Math.floor(timeoutMs / 10))),
    );
    shutdown.addEventListener(
      "abort",
      () => {
        for (const run of this.#live) abort(run, shutdown.reason);
      },
      { once: true },
    );
  }

  /**
   * Runs `body`, which gets the run's signal through `signal()` (made on first call, already
   * aborted if the run was). `body` must not reject.
   */
  start<T>(body: (signal: () => AbortSignal) => Promise<T>, timedOut: T): StartedRun<T> {
    let resolve!: (value: T) => void;
    const outcome = new Promise<T>((done) => {
      resolve = done;
    });
    let result: T | undefined;
    const run: Run = {
      deadline: performance.now() + this.#timeoutMs,
      timeoutMs: this.#timeoutMs,
      settled: false,
      settle: (expired) => {
        if (run.settled) return;
        run.settled = true;
        this.#live.delete(run);
        resolve(expired ? timedOut : (result as T));
      },
      controller: undefined,
      reason: undefined,
    };
    if (this.#shutdown.aborted) run.reason = this.#shutdown.reason;
    this.#live.add(run);
    this.#deadlines.add(run);
    const signal = (): AbortSignal => {
      if (run.controller === undefined) {
        run.controller = new AbortController();
        if (run.reason !== undefined) run.controller.abort(run.reason);
      }
      return run.controller.signal;
    };
    const late = body(signal);
    void late.then((value) => {
      result = value;
      run.settle(false);
    });
    return { outcome, late };
  }

  /** Stops the deadline sweep; runs still going are left to their own end. */
  close(): void {
    this.#deadlines.close();
  }
}

function abort(run: Run, reason: unknown): void {
  if (run.reason !== undefined) return;
  run.reason = reason ?? new TetherError(ErrorCode.Closed, "aborted");
  run.controller?.abort(run.reason);
}
