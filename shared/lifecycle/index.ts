/**
 * How things stop: an ordered shutdown that keeps going past a failed step, and the process
 * bootstrap every service's `main.ts` shares (signals, crashes, exit codes).
 */
import { describeError, ErrorCode, TetherError } from "../errors/index.ts";
import type { Logger } from "../log/index.ts";

/** One thing to close. `run` may return nothing, a promise, or throw. */
export interface ShutdownStep {
  /** Names the step in logs and in the error a failed shutdown rejects with. */
  readonly name: string;
  readonly run: () => unknown;
  /** Logged when this step fails, instead of the shutdown's own message. */
  readonly message?: string;
}

export interface ShutdownOptions {
  readonly logger: Logger;
  /** Names the whole in the rejection: "worker shutdown" gives "worker shutdown failed: producer". */
  readonly what?: string;
  /** Logged, with `{ err, step }`, for each step that fails. Default "shutdown step failed". */
  readonly message?: string;
}

export type ShutdownStatus = "pending" | "running" | "done" | "failed";

/** Steps in one phase run at the same time; phases run one after the other. */
type Phase = readonly ShutdownStep[];

/**
 * Runs shutdown steps in order. A step that fails is logged and remembered and the next step
 * still runs; at the end {@link Shutdown.run} rejects with an `internal` TetherError that names
 * the failed steps (their errors are its cause, an AggregateError). Running it again returns
 * the same promise, so every caller of a `close()` waits for the one shutdown.
 */
export class Shutdown {
  readonly #logger: Logger;
  readonly #what: string;
  readonly #message: string;
  readonly #phases: Phase[] = [];
  readonly #failed: string[] = [];
  #status: ShutdownStatus = "pending";
  #running: Promise<void> | undefined;

  constructor(options: ShutdownOptions) {
    this.#logger = options.logger;
    this.#what = options.what ?? "shutdown";
    this.#message = options.message ?? "shutdown step failed";
  }

  get status(): ShutdownStatus {
    return this.#status;
  }

  /** Names of the steps that failed so far, in the order they failed. */
  get failedSteps(): readonly string[] {
    return [...this.#failed];
  }

  /** Adds a step after those added so far. */
  add(name: string, run: () => unknown, message?: string): this {
    return this.#insert("last", [step(name, run, message)]);
  }

  /**
   * Adds a step before those added so far: for things closed in the reverse order they were
   * opened in, each added as it opens.
   */
  addFirst(name: string, run: () => unknown, message?: string): this {
    return this.#insert("first", [step(name, run, message)]);
  }

  /** Adds steps that run at the same time (sharing a grace period), after those added so far. */
  addConcurrent(steps: readonly ShutdownStep[]): this {
    return this.#insert("last", [...steps]);
  }

  /** Runs every step once; rejects when any failed. */
  run(): Promise<void> {
    this.#running ??= this.#runAll();
    return this.#running;
  }

  #insert(where: "first" | "last", phase: Phase): this {
    if (this.#status !== "pending") {
      throw new TetherError(ErrorCode.Closed, `${this.#what} already started; no step can be added`);
    }
    if (where === "first") this.#phases.unshift(phase);
    else this.#phases.push(phase);
    return this;
  }

  async #runAll(): Promise<void> {
    this.#status = "running";
    const errors: unknown[] = [];
    for (const phase of this.#phases) {
      await Promise.all(
        phase.map(async ({ name, run, message }) => {
          try {
            await run();
          } catch (error) {
            errors.push(error);
            this.#failed.push(name);
            this.#logger.error({ err: error, step: name }, message ?? this.#message);
          }
        }),
      );
    }
    if (errors.length === 0) {
      this.#status = "done";
      return;
    }
    this.#status = "failed";
    const steps = [...this.#failed];
    throw new TetherError(ErrorCode.Internal, `${this.#what} failed: ${steps.join(", ")}`, {
      cause: new AggregateError(errors, `${steps.length} shutdown step(s) failed`),
      details: { steps },
    });
  }
}

function step(name: string, run: () => unknown, message: string | undefined): ShutdownStep {
  return message === undefined ? { name, run } : { name, run, message };
}

/** Why a process stops. */
export type StopReason =
  | { readonly kind: "signal"; readonly signal: NodeJS.Signals }
  | { readonly kind: "failure"; readonly error: unknown };

/** Stops the service; rejects when something did not close (it logs its own failures). */
export type StopFunction = (reason: StopReason) => Promise<void>;

/** The part of `process` the bootstrap uses; tests pass a fake. */
export interface ProcessHost {
  on(event: string, listener: (value: unknown) => void): unknown;
  exit(code: number): never;
  readonly stderr: { write(text: string): unknown };
}

export interface ServiceProcessOptions {
  /** Starts every line written to stderr: "tether edge" gives "tether edge: ...". */
  readonly name: string;
  /** Logged (fatal) on an uncaught exception or unhandled rejection; default names the event. */
  readonly crashMessage?: string;
  /** Logged (fatal) when the main function rejects. Default `crashMessage`, else "failed to start". */
  readonly startFailedMessage?: string;
  /**
   * What SIGTERM or SIGINT does while a stop runs. "exit" (default) exits 1 at once, for an
   * operator who does not want to wait; "ignore" logs it, for processes whose supervisor and
   * process group both forward the same signal.
   */
  readonly repeatedSignal?: "exit" | "ignore";
  /** A stop that takes longer is logged and exits 1. No deadline when omitted. */
  readonly stopDeadlineMs?: number;
  /** Default: the real `process`. */
  readonly host?: ProcessHost;
}

export type ServiceProcessStatus = "created" | "running" | "stopping" | "exited";

/** Exit code of a configuration the process cannot start with. */
export const EXIT_CONFIG = 2;
/** Exit code of a crash, a failed start, or a stop that did not close everything. */
export const EXIT_FAILURE = 1;

/**
 * The bootstrap of a service process. {@link ServiceProcess.run} installs the crash handlers
 * and runs `main`; `main` reads its configuration through {@link ServiceProcess.readConfig},
 * hands over its logger, and registers its stop function with {@link ServiceProcess.onStop},
 * which installs the SIGTERM/SIGINT handlers. The process exits 0 only when a signal asked for
 * the stop and the stop resolved; a crash, a failed start or a failed step exits non-zero.
 */
export class ServiceProcess {
  readonly #name: string;
  readonly #crashMessage: string | undefined;
  readonly #startFailedMessage: string;
  readonly #repeatedSignal: "exit" | "ignore";
  readonly #stopDeadlineMs: number | undefined;
  readonly #host: ProcessHost;
  #status: ServiceProcessStatus = "created";
  #logger: Logger | undefined;
  #stop: StopFunction | undefined;
  /** A fatal failure happened; the exit is non-zero whatever the stop does. */
  #failed = false;

  constructor(options: ServiceProcessOptions) {
    this.#name = options.name;
    this.#crashMessage = options.crashMessage;
    this.#startFailedMessage = options.startFailedMessage ?? options.crashMessage ?? "failed to start";
    this.#repeatedSignal = options.repeatedSignal ?? "exit";
    this.#stopDeadlineMs = options.stopDeadlineMs;
    this.#host = options.host ?? process;
  }

  get status(): ServiceProcessStatus {
    return this.#status;
  }

  /** Installs the crash handlers and runs `main`; a rejection exits 1. */
  run(main: () => Promise<void>): void {
    if (this.#status !== "created") throw new TetherError(ErrorCode.Internal, "the process already runs");
    this.#status = "running";
    this.#host.on("uncaughtException", (error) => this.#crash(error, "uncaught exception"));
    this.#host.on("unhandledRejection", (error) => this.#crash(error, "unhandled rejection"));
    main().catch((error: unknown) => {
      if (this.#status === "exited") return;
      this.#report(error, this.#startFailedMessage);
      this.exit(EXIT_FAILURE);
    });
  }

  /**
   * Reads the configuration. When `read` throws, `report` tells the operator (by default one
   * stderr line, "<name>: <message>") and the process exits 2.
   */
  readConfig<C>(read: () => C, report?: (error: unknown) => void): C {
    try {
      return read();
    } catch (error) {
      if (report === undefined) this.#host.stderr.write(`${this.#name}: ${describeError(error)}\n`);
      else report(error);
      return this.exit(EXIT_CONFIG);
    }
  }

  /** From now on crashes are logged (fatal) through `logger`, and it is flushed before exit. */
  useLogger(logger: Logger): void {
    this.#logger = logger;
  }

  /** Registers how the service stops and installs the SIGTERM and SIGINT handlers. */
  onStop(stop: StopFunction): void {
    if (this.#stop !== undefined) throw new TetherError(ErrorCode.Internal, "a stop function is already registered");
    this.#stop = stop;
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      this.#host.on(signal, () => this.#onSignal(signal));
    }
  }

  /**
   * Something the service cannot go on without failed: logs it (fatal) and stops with a
   * failure, so the exit is non-zero. Without a stop function it exits 1 at once.
   */
  fail(error: unknown, message: string): void {
    this.#report(error, message);
    this.stop({ kind: "failure", error });
  }

  /**
   * Starts the stop, as a signal does; a second call while it runs changes nothing, except that
   * a failure makes the exit non-zero. Without a stop function it exits at once.
   */
  stop(reason: StopReason): void {
    if (reason.kind === "failure") this.#failed = true;
    if (this.#status === "stopping" || this.#status === "exited") return;
    void this.#stopWith(reason);
  }

  /** Flushes the logger and exits with `code`. */
  exit(code: number): never {
    this.#status = "exited";
    try {
      this.#logger?.flush();
    } catch {
      // Nothing left to tell it with.
    }
    return this.#host.exit(code);
  }

  #onSignal(signal: NodeJS.Signals): void {
    if (this.#status === "exited") return;
    if (this.#status !== "stopping") {
      this.stop({ kind: "signal", signal });
      return;
    }
    if (this.#repeatedSignal === "ignore") {
      this.#logger?.info({ signal }, "already shutting down");
      return;
    }
    this.#logger?.warn({ signal }, "second signal; exiting without finishing the shutdown");
    this.exit(EXIT_FAILURE);
  }

  async #stopWith(reason: StopReason): Promise<void> {
    this.#status = "stopping";
    const stop = this.#stop;
    if (stop === undefined) {
      this.exit(reason.kind === "signal" && !this.#failed ? 0 : EXIT_FAILURE);
      return;
    }
    let deadline: NodeJS.Timeout | undefined;
    if (this.#stopDeadlineMs !== undefined) {
      const deadlineMs = this.#stopDeadlineMs;
      deadline = setTimeout(() => {
        if (this.#status === "exited") return;
        this.#logger?.error({ deadlineMs }, "shutdown deadline passed");
        this.exit(EXIT_FAILURE);
      }, deadlineMs);
      deadline.unref();
    }
    let ok = reason.kind === "signal";
    try {
      await stop(reason);
    } catch {
      // The stop logged what failed; the exit code says that something did.
      ok = false;
    }
    clearTimeout(deadline);
    // The deadline, a crash or a second signal may have ended it meanwhile.
    if (this.#hasExited()) return;
    this.exit(ok && !this.#failed ? 0 : EXIT_FAILURE);
  }

  #hasExited(): boolean {
    return this.#status === "exited";
  }

  #crash(error: unknown, event: string): void {
    if (this.#status === "exited") return;
    this.#report(error, this.#crashMessage ?? event);
    this.exit(EXIT_FAILURE);
  }

  #report(error: unknown, message: string): void {
    try {
      if (this.#logger !== undefined) {
        this.#logger.fatal({ err: error }, message);
        return;
      }
    } catch {
      // A logger that throws must not hide the failure: fall back to stderr.
    }
    this.#host.stderr.write(`${this.#name}: ${message}: ${describeError(error)}\n`);
  }
}
