import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, rmSync } from "node:fs";

/**
 * Wraps the real command in a small shell that ends it when our stdin closes, so that the
 * JVMs go away even when this Node process is killed with SIGKILL and no handler runs.
 * The shell leads its own process group; stop() signals the whole group.
 */
const watchdog = [
  "exec 3<&0 0</dev/null",
  '"$@" &',
  "child=$!",
  '{ cat <&3 >/dev/null; kill -TERM "$child" 2>/dev/null; sleep 5; kill -KILL "$child" 2>/dev/null; } &',
  "watcher=$!",
  "exec 3<&-",
  "trap 'kill -TERM \"$child\" 2>/dev/null' TERM INT",
  'while :; do wait "$child"; status=$?; kill -0 "$child" 2>/dev/null || break; done',
  'kill "$watcher" 2>/dev/null',
  'exit "$status"',
].join("\n");

export interface ManagedProcessOptions {
  /** For messages only. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  /** stdout and stderr go here. */
  readonly logFile: string;
  readonly env?: NodeJS.ProcessEnv;
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A child process in its own process group that never outlives the test process. */
export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  readonly #child: ChildProcess;
  readonly exited: Promise<ExitInfo>;
  #exit: ExitInfo | undefined;

  constructor(options: ManagedProcessOptions) {
    this.name = options.name;
    this.logFile = options.logFile;
    const log = openSync(options.logFile, "a");
    try {
      this.#child = spawn("bash", ["-c", watchdog, options.name, options.command, ...options.args], {
        cwd: options.cwd,
        env: options.env ?? process.env,
        detached: true,
        stdio: ["pipe", log, log],
      });
    } finally {
      closeSync(log);
    }
    this.exited = new Promise((resolve) => {
      this.#child.once("exit", (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
      this.#child.once("error", () => {
        this.#exit = { code: null, signal: null };
        resolve(this.#exit);
      });
    });
    // Neither the child nor its stdin pipe may keep this process alive; exit handlers end it.
    this.#child.unref();
    (this.#child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  running(): boolean {
    return this.#exit === undefined && this.#child.pid !== undefined;
  }

  exitInfo(): ExitInfo | undefined {
    return this.#exit;
  }

  /** SIGTERM to the group, then SIGKILL after `graceMs`. Resolves once the wrapper exited. */
  async stop(graceMs: number): Promise<void> {
    if (!this.running()) return;
    this.#signalGroup("SIGTERM");
    const graceful = (await within(this.exited, graceMs)) !== undefined;
    // The wrapper may be gone while the JVM still shuts down; the group kill covers both.
    this.#signalGroup("SIGKILL");
    if (!graceful) await within(this.exited, 2000);
  }

  /** Synchronous last resort for exit handlers. */
  killNow(): void {
    this.#signalGroup("SIGKILL");
  }

  #signalGroup(signal: NodeJS.Signals): void {
    const pid = this.#child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // Already gone.
    }
  }
}

export { sleep as delay } from "../../shared/async/index.ts";

/** The promise's value, or undefined once `ms` passed; leaves no timer behind. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Removes a directory tree, tolerating files that a dying process still writes. */
export function removeTree(path: string): void {
  rmSync(path, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
}
