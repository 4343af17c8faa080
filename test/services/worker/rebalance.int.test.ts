import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { repoRoot } from "../../harness/kafka.ts";
import { freePort } from "../../harness/net.ts";
import { ManagedProcess, removeTree } from "../../harness/process.ts";
import { Collector, requestMessage, sleep } from "./fixtures.ts";
import { kafkaEnv } from "./kafka-fixtures.ts";

const DEVICES = 40;
const PER_DEVICE = 75;

interface RunningWorker {
  readonly process: ManagedProcess;
  /** Requests this worker answered so far, from its /metrics. */
  handled(): Promise<number>;
}

async function startWorker(name: string, env: Record<string, string>, dir: string): Promise<RunningWorker> {
  const port = await freePort();
  const worker = new ManagedProcess({
    name,
    command: process.execPath,
    args: ["--import", "tsx", "services/worker/main.ts"],
    cwd: repoRoot,
    logFile: join(dir, `${name}.log`),
    env: { ...process.env, ...env, TETHER_WORKER_HTTP_PORT: String(port), TETHER_LOG_LEVEL: "info" },
  });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (!worker.running()) throw new Error(`${name} exited early; see ${worker.logFile}`);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) {
      return {
        process: worker,
        async handled() {
          const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
          return Number(/^tether_worker_handled_total\{type="echo"\} (\d+)$/m.exec(text)?.[1] ?? 0);
        },
      };
    }
    await sleep(200);
  }
  worker.killNow();
  throw new Error(`${name} not ready in time; see ${worker.logFile}`);
}

test("a worker joining mid-load and another killed with SIGKILL lose no request", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tether-worker-rebalance-"));
  const { config, broker, processEnv } = await kafkaEnv({ TETHER_REGISTRY: "memory", TETHER_WORKER_CONCURRENCY: "8" });
  const env = { ...processEnv, TETHER_WORKER_SHUTDOWN_MS: "10000" };
  const slots = [0, 1, 2, 3];
  const replies = await Collector.start(broker, config.names.repliesTopic, slots, "fake-edge");
  const producer = broker.producer();
  await producer.connect();
  const workers: ManagedProcess[] = [];
  let passed = false;
  t.after(async () => {
    for (const worker of workers) worker.killNow();
    await Promise.all([replies.close(), producer.close()]);
    if (!passed) t.diagnostic(`worker logs kept in ${dir}`);
    else removeTree(dir);
  });

  const first = await startWorker("worker-a", env, dir);
  workers.push(first.process);

  // Steady load: one request per device per round, so a device's ids go up in order.
  const total = DEVICES * PER_DEVICE;
  let second: RunningWorker | undefined;
  for (let round = 0; round < PER_DEVICE; round += 1) {
    const sends: Promise<unknown>[] = [];
    for (let d = 0; d < DEVICES; d += 1) {
      const deviceId = `dev-${d}`;
      const route = { slot: d % slots.length, edgeId: "edge-test", connId: `conn-${d}` };
      sends.push(
        producer.send(requestMessage(config.names, { deviceId, id: `r${round}`, type: "echo", body: round }, route)),
      );
    }
    await Promise.all(sends);
    if (round === Math.floor(PER_DEVICE / 4)) {
      second = await startWorker("worker-b", env, dir);
      workers.push(second.process);
    }
    if (round === Math.floor(PER_DEVICE / 2)) {
      // The newcomer must have taken partitions over before the first worker dies.
      const deadline = Date.now() + 20_000;
      while (second !== undefined && (await second.handled()) === 0 && Date.now() < deadline) await sleep(100);
      assert.ok(second && (await second.handled()) > 0, "the joining worker answered requests");
      first.process.killNow();
      const exit = await first.process.exited;
      assert.equal(exit.signal ?? "SIGKILL", "SIGKILL");
    }
    await sleep(60);
  }
  assert.ok(second);

  const key = (deviceId: unknown, id: unknown): string => `${String(deviceId)}/${String(id)}`;
  const unique = (): Set<string> => new Set(replies.items.map((item) => key(item.message.key, item.frame.id)));
  await replies.waitUntil(() => unique().size >= total, 60_000);
  for (let d = 0; d < DEVICES; d += 1) {
    const seen: string[] = [];
    for (const item of replies.items) {
      if (item.message.key !== `dev-${d}` || seen.includes(String(item.frame.id))) continue;
      seen.push(String(item.frame.id));
      assert.equal(item.frame.t, "res");
      assert.equal(item.frame.body, Number(String(item.frame.id).slice(1)));
    }
    assert.deepEqual(
      seen,
      Array.from({ length: PER_DEVICE }, (_, n) => `r${n}`),
      `dev-${d}: every request answered, first answers in order`,
    );
  }
  t.diagnostic(
    `${total} requests, ${replies.items.length} answers (${replies.items.length - total} repeats after the kill)`,
  );

  // The survivor leaves cleanly on SIGTERM and has committed everything it answered.
  await second.process.stop(15_000);
  assert.deepEqual(await second.process.exited, { code: 0, signal: null });
  const admin = broker.admin();
  try {
    assert.equal(await admin.groupLag(config.worker.groupId, config.names.requestsTopic), 0);
  } finally {
    await admin.close();
  }
  passed = true;
});
