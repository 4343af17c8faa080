/** Test helpers for the edge: a device client over a real socket, an echo worker, edge set-up. */
import { connect, type Socket } from "node:net";
import { type EdgeConfig, edgeConfigForTests } from "../../../services/edge/config.ts";
import { createEdge, type Edge, type EdgeDeps } from "../../../services/edge/edge.ts";
import { sleep } from "../../../shared/async/index.ts";
import { type Authenticator, createAuthenticator } from "../../../shared/auth/index.ts";
import { MemoryBroker, tetherTopics } from "../../../shared/broker/index.ts";
import type { Broker, GroupConsumer, Producer } from "../../../shared/broker/types.ts";
import { type CommonConfig, type ResourceNames, resourceNames } from "../../../shared/config/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { answerRecord, decodeRequest } from "../../../shared/records/index.ts";
import { MemoryRegistry } from "../../../shared/registry/index.ts";
import type { Registry } from "../../../shared/registry/types.ts";
import { testCommonConfig } from "../../harness/settings.ts";

export type Frame = Record<string, unknown> & { t: string };

/** The harness's in-memory {@link testCommonConfig}, with names and slots given in order. */
export function memoryCommon(names: ResourceNames = resourceNames(""), maxEdges = 4): CommonConfig {
  return testCommonConfig({ names, maxEdges });
}

/** A device speaking the protocol over a real socket; frames are collected as they arrive. */
export class Device {
  readonly socket: Socket;
  readonly frames: Frame[] = [];
  /** Lines that were not valid JSON objects (must stay empty: the edge only writes frames). */
  readonly invalid: string[] = [];
  closed = false;
  #buffer = "";
  #waiters: Array<() => void> = [];
  readonly closedPromise: Promise<void>;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.#buffer += chunk;
      let index = this.#buffer.indexOf("\n");
      while (index !== -1) {
        const line = this.#buffer.slice(0, index);
        this.#buffer = this.#buffer.slice(index + 1);
        try {
          const value = JSON.parse(line) as unknown;
          if (typeof value === "object" && value !== null && typeof (value as Frame).t === "string") {
            this.frames.push(value as Frame);
          } else this.invalid.push(line);
        } catch {
          this.invalid.push(line);
        }
        index = this.#buffer.indexOf("\n");
      }
      this.#notify();
    });
    socket.on("error", () => {});
    this.closedPromise = new Promise((resolve) => {
      socket.on("close", () => {
        this.closed = true;
        this.#notify();
        resolve();
      });
    });
  }

  static async connect(port: number, host = "127.0.0.1"): Promise<Device> {
    const socket = connect({ port, host, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return new Device(socket);
  }

  #notify(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  send(frame: object | string): void {
    this.socket.write(typeof frame === "string" ? frame : `${JSON.stringify(frame)}\n`);
  }

  /** Waits for (and removes) the first frame that matches. */
  async next(match: (frame: Frame) => boolean = () => true, timeoutMs = 3000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.frames.findIndex(match);
      if (index !== -1) return this.frames.splice(index, 1)[0]!;
      if (this.closed) throw new Error(`connection closed; frames left: ${JSON.stringify(this.frames)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  nextOfType(t: string, timeoutMs?: number): Promise<Frame> {
    return this.next((frame) => frame.t === t, timeoutMs);
  }

  /** Resolves when the edge closed the socket; rejects after the timeout. */
  async waitClosed(timeoutMs = 3000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.closedPromise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`still open after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  async hello(deviceId: string, token?: string, timeoutMs?: number): Promise<Frame> {
    this.send(token === undefined ? { t: "hello", v: 1, deviceId } : { t: "hello", v: 1, deviceId, token });
    return this.next((frame) => frame.t === "welcome" || frame.t === "error", timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A minimal worker: answers every request with its body (type `echo`) or `unknown_type`. */
export class EchoWorker {
  readonly #consumer: GroupConsumer;
  readonly #producer: Producer;
  /** When set, answers wait for it (to hold requests in flight). */
  gate: Promise<void> | undefined;
  handled = 0;

  constructor(broker: Broker, names: ResourceNames, groupId = "echo-worker") {
    this.#producer = broker.producer();
    this.#consumer = broker.groupConsumer({ groupId, topics: [names.requestsTopic], concurrency: 64 });
    this.names = names;
  }

  readonly names: ResourceNames;

  async start(): Promise<void> {
    await this.#producer.connect();
    await this.#consumer.start(async (message) => {
      const decoded = decodeRequest(message);
      if (!decoded.ok) return;
      const { request, route } = decoded.value;
      if (this.gate !== undefined) await this.gate;
      const frame =
        request.type === "echo"
          ? JSON.stringify({ t: "res", id: request.id, body: request.body })
          : JSON.stringify({
              t: "error",
              id: request.id,
              code: "unknown_type",
              message: "no handler",
              retryable: false,
            });
      await this.#producer.send(answerRecord(this.names.repliesTopic, route, request, frame));
      this.handled += 1;
    });
  }

  async close(): Promise<void> {
    await this.#consumer.close();
    await this.#producer.close();
  }
}

export interface TestFleet {
  readonly broker: MemoryBroker;
  readonly registry: MemoryRegistry;
  readonly common: CommonConfig;
}

export async function memoryFleet(maxEdges = 4): Promise<TestFleet> {
  const broker = new MemoryBroker({ logger: silentLogger() });
  const registry = new MemoryRegistry();
  const common = memoryCommon(resourceNames(""), maxEdges);
  const admin = broker.admin();
  await admin.ensureTopics(tetherTopics({ names: common.names, maxEdges, workPartitions: 4 }));
  await admin.close();
  return { broker, registry, common };
}

export type EdgeOverrides = Parameters<typeof edgeConfigForTests>[1];

export async function startEdge(
  fleet: { broker: Broker; registry: Registry; common: CommonConfig },
  overrides: EdgeOverrides = {},
  extra: Partial<Pick<EdgeDeps, "authenticator" | "now" | "onFatal" | "firstSlot">> = {},
): Promise<{ edge: Edge; port: number; config: EdgeConfig }> {
  const config = edgeConfigForTests(fleet.common, overrides);
  const authenticator: Authenticator = extra.authenticator ?? createAuthenticator({ mode: "none" });
  const edge = createEdge({
    config,
    logger: silentLogger(),
    broker: fleet.broker,
    registry: fleet.registry,
    authenticator,
    ...(extra.now === undefined ? {} : { now: extra.now }),
    ...(extra.onFatal === undefined ? {} : { onFatal: extra.onFatal }),
    ...(extra.firstSlot === undefined ? {} : { firstSlot: extra.firstSlot }),
  });
  await edge.start();
  return { edge, port: edge.address().port, config };
}

export { sleep };

/** Polls `check` until it returns true or the time is up. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 3000, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(10);
  }
  throw new Error(`${what} not reached within ${timeoutMs} ms`);
}
