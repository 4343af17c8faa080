/**
 * The fault-and-load scenarios, each parameterised by size: the CI test runs them small, and
 * `npm run soak` runs them at the sizes of the design's proof. Every scenario starts its own
 * fleet on a fresh name prefix in the production shape (64 reply slots, three edges), drives it
 * through the load balancer with SDK devices and, next to them, a share of raw devices that
 * never resend (raw-share.ts), injects its fault, lets the run settle and returns the counts.
 */
import { connect, type Socket } from "node:net";
import { hmacToken } from "../../shared/auth/index.ts";
import { uniquePrefix } from "../harness/index.ts";
import { delay } from "../harness/process.ts";
import { Balancer } from "./balancer.ts";
import { AUTH_SECRET, Fleet, type FleetProcess } from "./fleet.ts";
import type { ControllableCluster } from "./kafka-control.ts";
import { LoadGenerator, type LoadStats } from "./load.ts";
import { RawShare, type RawStats, rawDeviceCount } from "./raw-share.ts";

/** The production shape: partitions of `replies` (edge slots), and edges wherever a scenario has any. */
export const REPLY_SLOTS = 64;
export const EDGES = 3;

export interface ClusterAddress {
  readonly kafkaBrokers: string;
  readonly dynamodbEndpoint: string;
}

export interface ScenarioSize {
  readonly devices: number;
  /** Requests per second across all devices. */
  readonly rate: number;
  readonly pushRate: number;
  /** Load before the fault, and after it. */
  readonly warmupMs: number;
  readonly afterMs: number;
  /** Longest wait for open requests and pushes once sending stopped. */
  readonly graceMs: number;
  /** Scenario-specific count: slow readers, failed auths, storm devices... */
  readonly extra: number;
}

export interface ScenarioResult {
  readonly name: string;
  readonly size: ScenarioSize;
  readonly stats: LoadStats;
  /** The raw devices' counts, loss without resend among them. */
  readonly raw: RawStats;
  /** Answers and pushes the edges wrote more than once (counted on the wire). */
  readonly dupAnswers: number;
  readonly dupPushes: number;
  readonly recoveryMs: number;
  readonly rssBeforeKiB: number | undefined;
  readonly rssAfterKiB: number | undefined;
  readonly restarts: number;
  /** Free-form findings (exit codes, p99s, cut counts...). */
  readonly notes: string[];
  /** Scenario-specific figures the test asserts on (p99s, cut counts...). */
  readonly figures: Readonly<Record<string, number>>;
  readonly durationMs: number;
}

export interface ScenarioContext {
  /** The shared cluster (may be used by other tests at the same time). */
  readonly cluster: ClusterAddress;
  /** A private cluster whose nodes may be stopped (scenarios 3 and 4). */
  readonly controllable?: () => Promise<ControllableCluster>;
  readonly log?: (line: string) => void;
}

/** Answers slower than this count as trouble when measuring the recovery time. */
const SLOW_MS = 1000;
/** When the running scenario's fault began (for notes written during the fault). */
let faultClock = 0;
const sinceFault = (): number => Date.now() - faultClock;

interface Rig {
  readonly fleet: Fleet;
  readonly balancer: Balancer;
  readonly load: LoadGenerator;
  readonly raw: RawShare;
  readonly notes: string[];
  /** Starts, stops and settles the SDK load and the raw devices together. */
  start(): Promise<void>;
  stop(): Promise<void>;
  settle(graceMs: number): Promise<void>;
  close(failed: boolean): Promise<void>;
}

interface RigOptions {
  readonly edges: number;
  readonly workers: number;
  readonly cluster: ClusterAddress;
  readonly size: ScenarioSize;
  readonly edgeEnv?: Record<string, string>;
  readonly backends?: (fleet: Fleet) => readonly number[];
}

async function rig(options: RigOptions): Promise<Rig> {
  const prefix = uniquePrefix();
  const fleet = new Fleet({
    kafkaBrokers: options.cluster.kafkaBrokers,
    dynamodbEndpoint: options.cluster.dynamodbEndpoint,
    prefix,
    maxEdges: REPLY_SLOTS,
    workPartitions: 4,
    edgeEnv: {
      TETHER_DRAIN_MS: "5000",
      TETHER_RATE_LIMIT: "1000",
      // A shorter lease for experiments (`SOAK_EDGE_LEASE_MS=5000 npm run soak -- 1`).
      ...(process.env.SOAK_EDGE_LEASE_MS === undefined ? {} : { TETHER_EDGE_LEASE_MS: process.env.SOAK_EDGE_LEASE_MS }),
      ...options.edgeEnv,
    },
    workerEnv: { TETHER_WORKER_CONCURRENCY: "32", TETHER_WORKER_SHUTDOWN_MS: "5000" },
  });
  const balancer = new Balancer(() =>
    options.backends !== undefined ? options.backends(fleet) : fleet.liveEdges().map((edge) => edge.devicePort),
  );
  let load: LoadGenerator | undefined;
  let raw: RawShare | undefined;
  const close = async (failed: boolean) => {
    await raw?.close().catch(() => {});
    await load?.close().catch(() => {});
    await balancer.close().catch(() => {});
    await fleet.close(failed);
  };
  try {
    await fleet.setup();
    await Promise.all([
      ...Array.from({ length: options.edges }, () => fleet.startEdge()),
      ...Array.from({ length: options.workers }, () => fleet.startWorker()),
    ]);
    const port = await balancer.listen();
    load = new LoadGenerator({
      host: "127.0.0.1",
      port,
      devices: options.size.devices,
      devicePrefix: `${prefix}d`,
      rate: options.size.rate,
      pushRate: options.size.pushRate,
      kafkaBrokers: options.cluster.kafkaBrokers,
      namePrefix: prefix,
    });
    const rawDevices = rawDeviceCount(options.size.devices);
    raw = new RawShare({
      port,
      devices: rawDevices,
      devicePrefix: `${prefix}r`,
      // The SDK devices' rate per device.
      rate: (options.size.rate / options.size.devices) * rawDevices,
    });
    await Promise.all([load.connect(), raw.connect()]);
  } catch (error) {
    await close(true);
    throw error;
  }
  const sdk = load;
  const strict = raw;
  return {
    fleet,
    balancer,
    load: sdk,
    raw: strict,
    notes: [],
    start: async () => {
      strict.start();
      await sdk.start();
    },
    stop: async () => {
      await Promise.all([sdk.stop(), strict.stop()]);
    },
    settle: async (graceMs) => {
      await Promise.all([sdk.settle(graceMs), strict.settle(graceMs)]);
    },
    close,
  };
}

function result(
  name: string,
  size: ScenarioSize,
  r: Rig,
  started: number,
  faultAt: number,
  rss: { before?: number | undefined; after?: number | undefined } = {},
  figures: Record<string, number> = {},
): ScenarioResult {
  const dup = r.balancer.duplicates();
  if (r.fleet.exits.length > 0) r.notes.push(`exits: ${r.fleet.exits.join("; ")}`);
  if (r.fleet.startupCrashes.length > 0) {
    r.notes.push(`crashed during start-up (started again): ${r.fleet.startupCrashes.join("; ")}`);
  }
  const stats = r.load.stats();
  if (stats.lost > 0) r.notes.push(`lost ids: ${r.load.lostIds().join(", ")}`);
  const raw = r.raw.stats();
  if (raw.lostWithoutResend > 0) r.notes.push(`lost without resend: ${r.raw.lostIds().join(", ")}`);
  if (r.load.replaced.size > 0) {
    r.notes.push(
      `${r.load.replaced.size} devices got \`bye replaced\` on their live connection and stopped ` +
        `(${r.load.pushesLostToReplaced()} of the undelivered pushes were theirs)`,
    );
  }
  return {
    name,
    size,
    stats,
    raw,
    dupAnswers: dup.answers,
    dupPushes: dup.pushes,
    recoveryMs: r.load.recoveryMs(faultAt, SLOW_MS),
    rssBeforeKiB: rss.before,
    rssAfterKiB: rss.after,
    restarts: r.fleet.restarts,
    notes: r.notes,
    figures,
    durationMs: Date.now() - started,
  };
}

/** Runs load, calls `fault` after the warm-up, keeps the load on, stops it and settles. */
async function steady(r: Rig, size: ScenarioSize, fault: () => Promise<void>): Promise<number> {
  await r.start();
  await delay(size.warmupMs);
  const faultAt = Date.now();
  faultClock = faultAt;
  await fault();
  await delay(size.afterMs);
  await r.stop();
  await r.settle(size.graceMs);
  return faultAt;
}

async function run(
  name: string,
  options: RigOptions,
  body: (r: Rig) => Promise<{
    faultAt: number;
    rss?: { before?: number | undefined; after?: number | undefined };
    figures?: Record<string, number>;
  }>,
): Promise<ScenarioResult> {
  const started = Date.now();
  const r = await rig(options);
  let failed = true;
  try {
    const { faultAt, rss, figures } = await body(r);
    const out = result(name, options.size, r, started, faultAt, rss, figures);
    failed = out.stats.lost > 0 || out.stats.pushesLost > 0 || out.raw.lostWithoutResend > 0;
    return out;
  } finally {
    await r.close(failed);
  }
}

/** 1. kill -9 of one edge at steady load; the orchestrator starts a replacement 2 s later. */
export function killEdge(ctx: ScenarioContext, size: ScenarioSize): Promise<ScenarioResult> {
  return run("kill -9 one edge", { edges: EDGES, workers: 2, cluster: ctx.cluster, size }, async (r) => {
    const faultAt = await steady(r, size, async () => {
      const victim = r.fleet.edges[0] as FleetProcess;
      await victim.kill9();
      await delay(2000);
      await r.fleet.startEdge();
    });
    return { faultAt };
  });
}

/** 2. kill -9 of one worker at steady load; the other worker takes its partitions. */
export function killWorker(ctx: ScenarioContext, size: ScenarioSize): Promise<ScenarioResult> {
  return run("kill -9 one worker", { edges: EDGES, workers: 2, cluster: ctx.cluster, size }, async (r) => {
    const faultAt = await steady(r, size, async () => {
      await (r.fleet.workers[0] as FleetProcess).kill9();
    });
    return { faultAt };
  });
}

/** 3. The Kafka broker stopped for `extra` ms, then started again on the same port and data. */
export async function kafkaOutage(ctx: ScenarioContext, size: ScenarioSize): Promise<ScenarioResult> {
  if (ctx.controllable === undefined) throw new Error("scenario needs a controllable cluster");
  const cluster = await ctx.controllable();
  return run("Kafka stopped 10 s", { edges: EDGES, workers: 1, cluster, size }, async (r) => {
    const faultAt = await steady(r, size, async () => {
      await cluster.stopKafka();
      r.notes.push(`broker stopped ${sinceFault()} ms after the fault`);
      await delay(size.extra);
      const startMs = await cluster.startKafka();
      r.notes.push(`broker back after ${sinceFault()} ms (start ${startMs} ms)`);
    });
    return { faultAt };
  });
}

/** 4. DynamoDB Local stopped for `extra` ms, then started again (file-backed: tables survive). */
export async function dynamoOutage(ctx: ScenarioContext, size: ScenarioSize): Promise<ScenarioResult> {
  if (ctx.controllable === undefined) throw new Error("scenario needs a controllable cluster");
  const cluster = await ctx.controllable();
  return run("DynamoDB stopped 10 s", { edges: EDGES, workers: 1, cluster, size }, async (r) => {
    const faultAt = await steady(r, size, async () => {
      await cluster.stopDynamo();
      await delay(size.extra);
      const startMs = await cluster.startDynamo();
      r.notes.push(`DynamoDB Local back after ${sinceFault()} ms (start ${startMs} ms)`);
    });
    return { faultAt };
  });
}

/**
 * 5. Rolling restart: for each edge, a new one starts, then the old one gets SIGTERM and drains
 * (as a rolling ECS deployment); load and pushes keep going.
 */
export function rollingRestart(ctx: ScenarioContext, size: ScenarioSize): Promise<ScenarioResult> {
  return run("rolling restart of every edge", { edges: EDGES, workers: 1, cluster: ctx.cluster, size }, async (r) => {
    const faultAt = await steady(r, size, async () => {
      const originals = [...r.fleet.edges];
      for (const old of originals) {
        await r.fleet.startEdge();
        const code = await old.terminate();
        r.notes.push(`${old.name} drained, exit ${code}`);
      }
    });
    return { faultAt };
  });
}

/**
 * 6. Reconnect storm: every device on one edge (the balancer sends them all there), that edge is
 * killed, and all reconnect at once to the others.
 */
export function reconnectStorm(ctx: ScenarioContext, size: ScenarioSize): Promise<ScenarioResult> {
  let first: number | undefined;
  return run(
    "reconnect storm",
    {
      edges: EDGES,
      workers: 1,
      cluster: ctx.cluster,
      size,
      backends: (fleet) => {
        const live = fleet.liveEdges();
        first ??= live[0]?.devicePort;
        const home = live.find((edge) => edge.devicePort === first);
        return home !== undefined ? [home.devicePort] : live.map((edge) => edge.devicePort);
      },
    },
    async (r) => {
      const faultAt = await steady(r, size, async () => {
        const before = r.load.reconnectTimes.length;
        await (r.fleet.edges[0] as FleetProcess).kill9();
        const killedAt = Date.now();
        const deadline = killedAt + 120_000;
        while (r.load.reconnectTimes.length - before < size.devices && Date.now() < deadline) await delay(50);
        const reconnected = r.load.reconnectTimes.length - before;
        const lastAt = r.load.reconnectTimes.at(-1) ?? killedAt;
        r.notes.push(`${reconnected}/${size.devices} devices reconnected, all within ${lastAt - killedAt} ms`);
      });
      return { faultAt };
    },
  );
}

/** A device that says hello and then never reads again. */
async function rawDevice(port: number, deviceId: string, token = hmacToken(AUTH_SECRET, deviceId)): Promise<Socket> {
  const socket = connect({ host: "127.0.0.1", port });
  socket.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.write(`${JSON.stringify({ t: "hello", v: 1, deviceId, token })}\n`);
  return socket;
}

async function waitWelcome(socket: Socket, timeoutMs = 10_000): Promise<boolean> {
  return new Promise((resolve) => {
    let text = "";
    const timer = setTimeout(() => done(false), timeoutMs);
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('"t":"welcome"')) done(true);
    };
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.pause();
      resolve(ok);
    };
    socket.on("data", onData);
  });
}

/**
 * 7. Slow readers: devices on one edge that send requests with large bodies and stop reading,
 * next to the normal devices. The edge must cut them and keep serving the others.
 */
export function slowReaders(ctx: ScenarioContext, size: ScenarioSize): Promise<ScenarioResult> {
  return run(
    "slow readers",
    { edges: EDGES, workers: 1, cluster: ctx.cluster, size, edgeEnv: { TETHER_MAX_QUEUED_BYTES: String(256 * 1024) } },
    async (r) => {
      const target = r.fleet.edges[0] as FleetProcess;
      await r.start();
      await delay(size.warmupMs);
      const baselineFrom = Date.now() - size.warmupMs / 2;
      const faultAt = Date.now();
      const rssBefore = target.rssKiB();
      const slow: Socket[] = [];
      let closedByEdge = 0;
      const body = "x".repeat(16 * 1024);
      for (let i = 0; i < size.extra; i++) {
        const socket = await rawDevice(target.devicePort, `${uniquePrefix()}slow${i}`);
        if (!(await waitWelcome(socket))) continue;
        socket.once("close", () => {
          closedByEdge += 1;
        });
        slow.push(socket);
        // Enough echo traffic to overflow any socket buffer: 4 MiB of answers per slow device.
        for (let n = 0; n < 256; n++) {
          socket.write(`{"t":"req","id":"s${n}","type":"echo","body":"${body}"}\n`);
        }
      }
      await delay(size.afterMs);
      const rssDuring = target.rssKiB();
      const p99Slow = r.load.percentile(99, faultAt);
      const p99Base = r.load.percentile(99, baselineFrom, faultAt);
      // A closed socket only shows its end once read: let them read now.
      for (const socket of slow) socket.resume();
      await delay(2000);
      await r.stop();
      await r.settle(size.graceMs);
      for (const socket of slow) socket.destroy();
      const metrics = await Fleet.metrics(target);
      const cuts = metrics?.get('tether_edge_closes_total{reason="slow_consumer"}');
      r.notes.push(
        `${slow.length} slow readers, ${closedByEdge} cut by the edge (edge metric: ${cuts ?? "n/a"}); ` +
          `normal p99 ${p99Base} ms before, ${p99Slow} ms with slow readers; edge RSS during ${rssDuring} KiB`,
      );
      for (const [key, value] of metrics ?? []) {
        if (key.startsWith("tether_edge_closes_total")) r.notes.push(`${key} ${value}`);
      }
      return {
        faultAt,
        rss: { before: rssBefore, after: target.rssKiB() },
        figures: {
          slowReaders: slow.length,
          cutSeen: closedByEdge,
          cutMetric: cuts ?? Number.NaN,
          p99Base,
          p99Slow,
          rssDuringKiB: rssDuring ?? Number.NaN,
        },
      };
    },
  );
}

/**
 * 8. Abuse next to normal devices: failed auths, slowloris, frames at the size limit, random
 * bytes. Normal devices keep their latency within 2x the baseline p99 of the same run.
 */
export function abuse(ctx: ScenarioContext, size: ScenarioSize): Promise<ScenarioResult> {
  return run(
    "abuse",
    { edges: EDGES, workers: 1, cluster: ctx.cluster, size, edgeEnv: { TETHER_HELLO_TIMEOUT_MS: "2000" } },
    async (r) => {
      const target = r.fleet.edges[0] as FleetProcess;
      await r.start();
      await delay(size.warmupMs);
      const baselineFrom = Date.now() - Math.min(size.warmupMs - 1000, 10_000);
      const faultAt = Date.now();
      const rssBefore = target.rssKiB();
      const port = target.devicePort;
      let stop = false;
      const counts = { failedAuths: 0, unauthorized: 0, slowloris: 0, bigFrames: 0, tooLarge: 0, garbage: 0 };

      const failedAuths = async () => {
        let next = 0;
        await Promise.all(
          Array.from({ length: 20 }, async () => {
            while (next < size.extra && !stop) {
              next += 1;
              const socket = await rawDevice(port, `bad${next}`, "bm90LWEtdG9rZW4").catch(() => undefined);
              if (socket === undefined) continue;
              const answer = await new Promise<string>((resolve) => {
                let text = "";
                socket.on("data", (chunk: Buffer) => {
                  text += chunk.toString();
                });
                socket.once("close", () => resolve(text));
                setTimeout(() => {
                  socket.destroy();
                }, 5000);
              });
              counts.failedAuths += 1;
              if (answer.includes('"unauthorized"')) counts.unauthorized += 1;
            }
          }),
        );
      };

      const slowloris = async () => {
        const line = Buffer.from(`{"t":"hello","v":1,"deviceId":"slowloris","token":"x"}\n`);
        const sockets: Socket[] = [];
        for (let i = 0; i < 50; i++) {
          const socket = connect({ host: "127.0.0.1", port });
          socket.on("error", () => {});
          sockets.push(socket);
          counts.slowloris += 1;
        }
        let at = 0;
        while (!stop) {
          for (const socket of sockets) if (socket.writable) socket.write(line.subarray(at, at + 1));
          at = (at + 1) % line.length;
          await delay(1000);
        }
        for (const socket of sockets) socket.destroy();
      };

      const bigFrames = async () => {
        const deviceId = `${uniquePrefix()}big`;
        const socket = await rawDevice(port, deviceId);
        await waitWelcome(socket);
        socket.resume();
        socket.on("data", () => {});
        const limit = 65536;
        let n = 0;
        while (!stop) {
          n += 1;
          const head = `{"t":"req","id":"b${n}","type":"echo","body":"`;
          const tail = `"}`;
          const fill = "y".repeat(limit - head.length - tail.length);
          socket.write(`${head}${fill}${tail}\n`);
          counts.bigFrames += 1;
          await delay(100);
        }
        // One frame past the limit: the edge answers frame_too_large and closes.
        const over = await rawDevice(port, `${deviceId}o`);
        await waitWelcome(over);
        over.resume();
        const text = await new Promise<string>((resolve) => {
          let got = "";
          over.on("data", (chunk: Buffer) => {
            got += chunk.toString();
          });
          over.once("close", () => resolve(got));
          over.write(`{"t":"req","id":"o","type":"echo","body":"${"z".repeat(limit)}"}\n`);
          setTimeout(() => over.destroy(), 5000);
        });
        if (text.includes("frame_too_large")) counts.tooLarge += 1;
        socket.destroy();
      };

      const garbage = async () => {
        while (!stop) {
          const socket = connect({ host: "127.0.0.1", port });
          socket.on("error", () => {});
          socket.on("data", () => {});
          await new Promise<void>((resolve) => {
            socket.once("connect", () => {
              const bytes = Buffer.alloc(4096);
              for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
              socket.write(bytes);
              counts.garbage += 1;
              resolve();
            });
            socket.once("error", () => resolve());
          });
          await delay(20);
          socket.destroy();
        }
      };

      const attacks = [slowloris(), bigFrames(), garbage()];
      await failedAuths();
      const authDoneAt = Date.now();
      await delay(Math.max(0, size.afterMs - (authDoneAt - faultAt)));
      stop = true;
      await Promise.allSettled(attacks);
      const p99Base = r.load.percentile(99, baselineFrom, faultAt);
      const p99Abuse = r.load.percentile(99, faultAt, Date.now());
      await r.stop();
      await r.settle(size.graceMs);
      const rssAfter = target.rssKiB();
      r.notes.push(
        `baseline p99 ${p99Base} ms, p99 under abuse ${p99Abuse} ms (${(p99Abuse / p99Base).toFixed(2)}x); ` +
          `failed auths ${counts.failedAuths} (unauthorized answers ${counts.unauthorized}) in ${authDoneAt - faultAt} ms, ` +
          `slowloris sockets ${counts.slowloris}, frames at the limit ${counts.bigFrames}, ` +
          `oversize cut ${counts.tooLarge}, random-byte connections ${counts.garbage}`,
      );
      return { faultAt, rss: { before: rssBefore, after: rssAfter }, figures: { p99Base, p99Abuse, ...counts } };
    },
  );
}
