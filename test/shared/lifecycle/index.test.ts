import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { Writable } from "node:stream";
import { describe, test } from "node:test";
import { sleep } from "../../../shared/async/index.ts";
import { hasErrorCode } from "../../../shared/errors/index.ts";
import {
  type ProcessHost,
  ServiceProcess,
  type ServiceProcessOptions,
  Shutdown,
  type StopReason,
} from "../../../shared/lifecycle/index.ts";
import { createLogger, type Logger } from "../../../shared/log/index.ts";

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly step?: string;
  readonly signal?: string;
  readonly err?: { readonly message: string };
}

/** A real pino logger writing into an array. */
function recordingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line !== "") lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { logger: createLogger({ name: "test", level: "debug", destination }), lines };
}

const FATAL = 60;

describe("Shutdown", () => {
  test("runs its steps in the order they were added, each after the last one finished", async () => {
    const { logger } = recordingLogger();
    const order: string[] = [];
    const later = (name: string) => async () => {
      await sleep(5);
      order.push(name);
    };
    await new Shutdown({ logger }).add("a", later("a")).add("b", later("b")).add("c", later("c")).run();
    assert.deepEqual(order, ["a", "b", "c"]);
  });

  test("a step that fails is logged and the steps after it still run; the run rejects naming it", async () => {
    const { logger, lines } = recordingLogger();
    const ran: string[] = [];
    const shutdown = new Shutdown({ logger, what: "worker shutdown" })
      .add("consumer", () => {
        ran.push("consumer");
        throw new Error("consumer stuck");
      })
      .add("producer", async () => {
        ran.push("producer");
        throw new Error("flush failed");
      })
      .add("store", () => {
        ran.push("store");
      });
    await assert.rejects(shutdown.run(), (error: unknown) => {
      assert.ok(hasErrorCode(error, "internal"));
      assert.equal(error.message, "worker shutdown failed: consumer, producer");
      assert.deepEqual(error.details, { steps: ["consumer", "producer"] });
      assert.ok(error.cause instanceof AggregateError);
      assert.deepEqual(
        error.cause.errors.map((e: Error) => e.message),
        ["consumer stuck", "flush failed"],
      );
      return true;
    });
    assert.deepEqual(ran, ["consumer", "producer", "store"]);
    assert.deepEqual(shutdown.failedSteps, ["consumer", "producer"]);
    assert.equal(shutdown.status, "failed");
    const failures = lines.filter((line) => line.msg === "shutdown step failed");
    assert.deepEqual(
      failures.map((line) => [line.step, line.err?.message]),
      [
        ["consumer", "consumer stuck"],
        ["producer", "flush failed"],
      ],
    );
  });

  test("logs a step's own message when it has one, else the shutdown's", async () => {
    const { logger, lines } = recordingLogger();
    const shutdown = new Shutdown({ logger, message: "close failed" })
      .add("edge", () => Promise.reject(new Error("no")), "drain failed")
      .add("registry", () => Promise.reject(new Error("no")));
    await assert.rejects(shutdown.run());
    assert.deepEqual(
      lines.map((line) => [line.msg, line.step]),
      [
        ["drain failed", "edge"],
        ["close failed", "registry"],
      ],
    );
  });

  test("running it twice returns the same promise and runs every step once", async () => {
    const { logger } = recordingLogger();
    let runs = 0;
    const shutdown = new Shutdown({ logger }).add("only", async () => {
      runs += 1;
    });
    const first = shutdown.run();
    assert.equal(shutdown.run(), first);
    await first;
    await shutdown.run();
    assert.equal(runs, 1);
    assert.equal(shutdown.status, "done");
  });

  test("addFirst puts a step before the others, for closing in the reverse order of opening", async () => {
    const { logger } = recordingLogger();
    const order: string[] = [];
    const shutdown = new Shutdown({ logger });
    for (const name of ["registry", "producer", "http"]) shutdown.addFirst(name, () => order.push(name));
    await shutdown.run();
    assert.deepEqual(order, ["http", "producer", "registry"]);
  });

  test("concurrent steps run at the same time, and the next step waits for all of them", async () => {
    const { logger } = recordingLogger();
    const events: string[] = [];
    const slow = (name: string, ms: number) => async () => {
      events.push(`${name} start`);
      await sleep(ms);
      events.push(`${name} end`);
    };
    const shutdown = new Shutdown({ logger })
      .addConcurrent([
        { name: "requests", run: slow("requests", 20) },
        { name: "router", run: () => Promise.reject(new Error("router stuck")) },
        { name: "pushes", run: slow("pushes", 5) },
      ])
      .add("producer", () => events.push("producer"));
    await assert.rejects(shutdown.run(), /failed: router/);
    assert.deepEqual(events, ["requests start", "pushes start", "pushes end", "requests end", "producer"]);
  });

  test("refuses a step added once it has started", async () => {
    const { logger } = recordingLogger();
    const shutdown = new Shutdown({ logger });
    await shutdown.run();
    assert.throws(
      () => shutdown.add("late", () => {}),
      (error: unknown) => hasErrorCode(error, "closed"),
    );
  });
});

/**
 * A stand-in for `process`: records exits and stderr, and emits signals and crashes on demand.
 * Its exit returns, where the real one never does; the bootstrap ignores what comes after.
 */
class FakeHost extends EventEmitter implements ProcessHost {
  readonly exits: number[] = [];
  stderrText = "";
  readonly stderr = {
    write: (text: string): boolean => {
      this.stderrText += text;
      return true;
    },
  };
  readonly #exited: Array<(code: number) => void> = [];

  exit(code: number): never {
    this.exits.push(code);
    for (const resolve of this.#exited.splice(0)) resolve(code);
    return undefined as never;
  }

  /** The next exit's code. */
  nextExit(): Promise<number> {
    return new Promise((resolve) => this.#exited.push(resolve));
  }

  send(event: string, value?: unknown): void {
    this.emit(event, value ?? event);
  }
}

function serviceProcess(options: Partial<ServiceProcessOptions> = {}): { life: ServiceProcess; host: FakeHost } {
  const host = new FakeHost();
  return { life: new ServiceProcess({ name: "tether test", ...options, host }), host };
}

function run(life: ServiceProcess, main: () => Promise<void>): void {
  life.run(main);
}

describe("ServiceProcess", () => {
  test("a configuration that cannot be read is printed on one stderr line and exits 2", async () => {
    const { life, host } = serviceProcess();
    const exit = host.nextExit();
    run(life, async () => {
      life.readConfig(() => {
        throw new Error("TETHER_AUTH_MODE=none needs TETHER_ENV=development");
      });
    });
    assert.equal(await exit, 2);
    assert.equal(host.stderrText, "tether test: TETHER_AUTH_MODE=none needs TETHER_ENV=development\n");
  });

  test("a configuration error can be reported another way, still with exit 2", async () => {
    const { life, host } = serviceProcess();
    const reported: unknown[] = [];
    const exit = host.nextExit();
    run(life, async () => {
      life.readConfig(
        () => {
          throw new Error("bad");
        },
        (error) => reported.push(error),
      );
    });
    assert.equal(await exit, 2);
    assert.equal(reported.length, 1);
    assert.equal(host.stderrText, "");
  });

  test("SIGTERM runs the stop once and exits 0 when it resolved", async () => {
    const { life, host } = serviceProcess();
    const reasons: StopReason[] = [];
    run(life, async () => {
      life.onStop(async (reason) => {
        reasons.push(reason);
        await sleep(5);
      });
    });
    await sleep(1);
    const exit = host.nextExit();
    host.send("SIGTERM");
    assert.equal(await exit, 0);
    assert.deepEqual(reasons, [{ kind: "signal", signal: "SIGTERM" }]);
  });

  test("a stop that rejects (a failed step) exits 1", async () => {
    const { life, host } = serviceProcess();
    const { logger } = recordingLogger();
    run(life, async () => {
      life.useLogger(logger);
      life.onStop(() =>
        new Shutdown({ logger })
          .add("drain", () => Promise.reject(new Error("producer flush failed")))
          .add("registry", () => {})
          .run(),
      );
    });
    await sleep(1);
    const exit = host.nextExit();
    host.send("SIGINT");
    assert.equal(await exit, 1);
  });

  test("a second signal during the stop exits 1 at once by default", async () => {
    const { life, host } = serviceProcess();
    const { logger, lines } = recordingLogger();
    run(life, async () => {
      life.useLogger(logger);
      life.onStop(() => new Promise(() => {}));
    });
    await sleep(1);
    host.send("SIGTERM");
    const exit = host.nextExit();
    host.send("SIGINT");
    assert.equal(await exit, 1);
    assert.ok(lines.some((line) => line.signal === "SIGINT" && /second signal/.test(line.msg)));
  });

  test("with repeated signals ignored, a second signal is logged and the stop goes on to exit 0", async () => {
    const { life, host } = serviceProcess({ repeatedSignal: "ignore" });
    const { logger, lines } = recordingLogger();
    let stops = 0;
    run(life, async () => {
      life.useLogger(logger);
      life.onStop(async () => {
        stops += 1;
        await sleep(20);
      });
    });
    await sleep(1);
    const exit = host.nextExit();
    host.send("SIGTERM");
    host.send("SIGTERM");
    assert.equal(await exit, 0);
    assert.equal(stops, 1);
    assert.deepEqual(host.exits, [0]);
    assert.ok(lines.some((line) => line.msg === "already shutting down" && line.signal === "SIGTERM"));
  });

  test("a failure is logged fatal and stops with a failure reason; the exit is 1 even when the stop resolved", async () => {
    const { life, host } = serviceProcess();
    const { logger, lines } = recordingLogger();
    const reasons: StopReason[] = [];
    run(life, async () => {
      life.useLogger(logger);
      life.onStop(async (reason) => {
        reasons.push(reason);
      });
    });
    await sleep(1);
    const exit = host.nextExit();
    const lost = new Error("slot lease lost");
    life.fail(lost, "edge failed");
    assert.equal(await exit, 1);
    assert.deepEqual(reasons, [{ kind: "failure", error: lost }]);
    assert.ok(lines.some((line) => line.level === FATAL && line.msg === "edge failed"));
  });

  test("a failure while a signal's stop runs makes that stop's exit non-zero", async () => {
    const { life, host } = serviceProcess();
    const { logger } = recordingLogger();
    run(life, async () => {
      life.useLogger(logger);
      life.onStop(() => sleep(10).then(() => {}));
    });
    await sleep(1);
    const exit = host.nextExit();
    host.send("SIGTERM");
    life.fail(new Error("lease lost while draining"), "edge failed");
    assert.equal(await exit, 1);
    assert.deepEqual(host.exits, [1]);
  });

  test("an uncaught exception is logged fatal and exits 1, never 0", async () => {
    const { life, host } = serviceProcess({ crashMessage: "edge crashed" });
    const { logger, lines } = recordingLogger();
    run(life, async () => life.useLogger(logger));
    await sleep(1);
    host.send("uncaughtException", new Error("boom"));
    assert.deepEqual(host.exits, [1]);
    const fatal = lines.find((line) => line.level === FATAL);
    assert.equal(fatal?.msg, "edge crashed");
    assert.equal(fatal?.err?.message, "boom");
  });

  test("without a crash message the log names the event; before a logger a crash goes to stderr", async () => {
    const { life, host } = serviceProcess();
    run(life, async () => {});
    await sleep(1);
    host.send("unhandledRejection", new Error("lost promise"));
    assert.deepEqual(host.exits, [1]);
    assert.equal(host.stderrText, "tether test: unhandled rejection: lost promise\n");
  });

  test("a main that rejects is reported as a failed start and exits 1", async () => {
    const { life, host } = serviceProcess({ startFailedMessage: "failed to start" });
    const exit = host.nextExit();
    life.run(async () => {
      throw new Error("listen EADDRINUSE");
    });
    assert.equal(await exit, 1);
    assert.equal(host.stderrText, "tether test: failed to start: listen EADDRINUSE\n");
  });

  test("a stop past the deadline is logged and exits 1", async () => {
    const { life, host } = serviceProcess({ stopDeadlineMs: 20 });
    const { logger, lines } = recordingLogger();
    // A stop that outlasts the deadline; its timer also keeps the test's event loop busy.
    const hang = new AbortController();
    run(life, async () => {
      life.useLogger(logger);
      life.onStop(() => sleep(10_000, { signal: hang.signal }).then(() => {}));
    });
    await sleep(1);
    const exit = host.nextExit();
    host.send("SIGTERM");
    assert.equal(await exit, 1);
    hang.abort();
    assert.ok(lines.some((line) => line.msg === "shutdown deadline passed"));
  });

  test("signals are only handled once a stop function is registered", async () => {
    const { life, host } = serviceProcess();
    run(life, async () => {});
    await sleep(1);
    assert.equal(host.listenerCount("SIGTERM"), 0);
    life.onStop(async () => {});
    assert.equal(host.listenerCount("SIGTERM"), 1);
    assert.equal(host.listenerCount("SIGINT"), 1);
  });
});
