/**
 * The load generator: many devices on the SDK (TetherClient) sending `echo` requests at a steady
 * total rate, a producer of pushes to `downlink`, and the bookkeeping of every request and push:
 * sent, acked, answered, failed, still open (lost when acked), reconnects, latencies.
 */
import { hmacToken } from "../../shared/auth/index.ts";
import { createKafkaBroker } from "../../shared/broker/kafka/index.ts";
import type { Producer } from "../../shared/broker/types.ts";
import { resourceNames } from "../../shared/config/index.ts";
import { silentLogger } from "../../shared/log/index.ts";
import { downlinkRecord } from "../../shared/records/index.ts";
import { ClientErrorCode, isTetherRequestError, TetherClient } from "../../shared/sdk/index.ts";
import { delay } from "../harness/process.ts";
import { localKafkaSettings } from "../harness/settings.ts";
import { AUTH_SECRET } from "./fleet.ts";

export interface LoadOptions {
  readonly host: string;
  readonly port: number;
  readonly devices: number;
  /** Device ids are `${devicePrefix}${index}`. */
  readonly devicePrefix: string;
  /** Requests per second across all devices. */
  readonly rate: number;
  /** Pushes per second across all devices (needs `kafkaBrokers` and `namePrefix`). */
  readonly pushRate?: number;
  readonly kafkaBrokers?: string;
  readonly namePrefix?: string;
  /** Devices connecting at once while starting. */
  readonly connectConcurrency?: number;
}

interface RequestRecord {
  readonly device: number;
  readonly sentAt: number;
  ackedAt: number;
  doneAt: number;
  outcome: "open" | "res" | "error" | "wrong";
  code: string | undefined;
  /** Sent again after `unavailable` / `rate_limited`, or saw a disconnect while open. */
  retries: number;
}

export interface LoadStats {
  readonly sent: number;
  readonly acked: number;
  /** Final answers (res or error) the application got. */
  readonly answered: number;
  readonly answeredOk: number;
  /** Final `error` answers, by code. */
  readonly errors: Readonly<Record<string, number>>;
  /** Answers whose body was not what was sent. */
  readonly wrong: number;
  /**
   * Acked, never answered by the system: still open at the end, or failed on the device's side
   * (its client stopped, timed out or lost its connection) without an answer from an edge.
   */
  readonly lost: number;
  /** Answered with no ack seen first (the answer overtook the ack, or the ack was lost with its edge). */
  readonly answeredUnacked: number;
  /** Never acked, never answered (the device gave up while the edge could not take them). */
  readonly openUnacked: number;
  /** `unavailable` / `rate_limited` answers that were retried. */
  readonly retried: number;
  readonly pushesSent: number;
  readonly pushesDelivered: number;
  readonly pushesLost: number;
  readonly reconnects: number;
  readonly p50: number;
  readonly p99: number;
}

/** SDK failures that are not an answer from an edge. */
const DEVICE_SIDE: ReadonlySet<string> = new Set([
  ClientErrorCode.Timeout,
  ClientErrorCode.Replaced,
  ClientErrorCode.Unauthorized,
  ClientErrorCode.Disconnected,
  ClientErrorCode.ConnectFailed,
]);

export class LoadGenerator {
  readonly options: LoadOptions;
  readonly clients: TetherClient[] = [];
  readonly #requests = new Map<string, RequestRecord>();
  readonly #pushesSent = new Set<string>();
  /** Device index of every push, to tell pushes lost to a stopped client. */
  readonly #pushDevice = new Map<string, number>();
  /** Devices whose client stopped on `bye replaced` (another connection of theirs took over). */
  readonly replaced = new Set<number>();
  readonly #pushesDelivered = new Set<string>();
  readonly #connectedOnce: boolean[] = [];
  #reconnects = 0;
  #retried = 0;
  #sending = false;
  #loop: Promise<void> | undefined;
  #pushLoop: Promise<void> | undefined;
  #seq = 0;
  #producer: Producer | undefined;
  /** Disconnect timestamps, for recovery. */
  readonly disconnects: number[] = [];
  readonly reconnectTimes: number[] = [];

  constructor(options: LoadOptions) {
    this.options = options;
  }

  deviceId(index: number): string {
    return `${this.options.devicePrefix}${index}`;
  }

  /** Creates and connects every device; resolves once all are open. */
  async connect(): Promise<void> {
    const { devices } = this.options;
    for (let index = 0; index < devices; index++) {
      const deviceId = this.deviceId(index);
      const client = new TetherClient({
        host: this.options.host,
        port: this.options.port,
        deviceId,
        token: hmacToken(AUTH_SECRET, deviceId),
        requestTimeoutMs: 60 * 60 * 1000,
        reconnect: { initialMs: 100, maxMs: 2000 },
        connectTimeoutMs: 15_000,
      });
      client.on("connected", () => {
        if (this.#connectedOnce[index] === true) {
          this.#reconnects += 1;
          this.reconnectTimes.push(Date.now());
        }
        this.#connectedOnce[index] = true;
      });
      client.on("disconnected", (info) => {
        if (info.wasOpen) this.disconnects.push(Date.now());
      });
      client.on("error", () => {});
      client.on("replaced", () => {
        this.replaced.add(index);
      });
      client.onPush((push) => {
        this.#pushesDelivered.add(push.id);
      });
      this.clients.push(client);
    }
    const concurrency = this.options.connectConcurrency ?? 100;
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, devices) }, async () => {
        while (next < devices) {
          const index = next++;
          await (this.clients[index] as TetherClient).connect();
        }
      }),
    );
  }

  /** Devices whose client is open right now. */
  openCount(): number {
    let open = 0;
    for (const client of this.clients) if (client.status === "open") open += 1;
    return open;
  }

  /** Starts sending at the configured rate (and pushing, when configured). */
  async start(): Promise<void> {
    if (this.#sending) return;
    this.#sending = true;
    this.#loop = this.#pace();
    if ((this.options.pushRate ?? 0) > 0) {
      const { kafkaBrokers, namePrefix } = this.options;
      if (kafkaBrokers === undefined || namePrefix === undefined)
        throw new Error("pushes need kafkaBrokers and namePrefix");
      this.#producer = createKafkaBroker({
        settings: localKafkaSettings({ kafkaBrokers }, "soak-pusher", { replicationFactor: 1 }),
        logger: silentLogger(),
      }).producer();
      await this.#producer.connect();
      this.#pushLoop = this.#pushPace(resourceNames(namePrefix).downlinkTopic);
    }
  }

  /** Stops sending new requests and pushes; open ones keep going. */
  async stop(): Promise<void> {
    this.#sending = false;
    await this.#loop;
    await this.#pushLoop;
  }

  async #pace(): Promise<void> {
    const started = performance.now();
    let sent = 0;
    while (this.#sending) {
      const due = Math.floor(((performance.now() - started) / 1000) * this.options.rate);
      // Never more than a second's worth at once, should the loop fall behind.
      const burst = Math.min(due - sent, Math.max(1, this.options.rate));
      for (let i = 0; i < burst; i++) this.#send();
      sent += burst;
      await delay(5);
    }
  }

  #send(): void {
    const device = this.#seq % this.options.devices;
    this.#seq += 1;
    const id = `q${this.#seq.toString(36)}`;
    const record: RequestRecord = {
      device,
      sentAt: Date.now(),
      ackedAt: 0,
      doneAt: 0,
      outcome: "open",
      code: undefined,
      retries: 0,
    };
    this.#requests.set(id, record);
    void this.#attempt(id, record);
  }

  async #attempt(id: string, record: RequestRecord): Promise<void> {
    const client = this.clients[record.device] as TetherClient;
    for (;;) {
      try {
        const body = await client.request(
          "echo",
          { id },
          {
            id,
            onAck: () => {
              if (record.ackedAt === 0) record.ackedAt = Date.now();
            },
          },
        );
        record.doneAt = Date.now();
        record.outcome = (body as { id?: unknown } | null)?.id === id ? "res" : "wrong";
        return;
      } catch (error) {
        const code = isTetherRequestError(error) ? error.code : "exception";
        if (code === "unavailable" || code === "rate_limited") {
          // The edge could not take it: try again with the same id, as a device should.
          record.retries += 1;
          this.#retried += 1;
          const after = isTetherRequestError(error) ? (error.retryAfterMs ?? 200) : 200;
          await delay(Math.max(50, after));
          continue;
        }
        if (code === "closed") return; // The run ended with the request still open.
        record.doneAt = Date.now();
        record.outcome = "error";
        record.code = code;
        return;
      }
    }
  }

  async #pushPace(topic: string): Promise<void> {
    const rate = this.options.pushRate ?? 0;
    const producer = this.#producer as Producer;
    const started = performance.now();
    let sent = 0;
    let counter = 0;
    while (this.#sending) {
      const due = Math.floor(((performance.now() - started) / 1000) * rate);
      const burst = Math.min(due - sent, Math.max(1, rate));
      for (let i = 0; i < burst; i++) {
        counter += 1;
        const device = (counter * 7919) % this.options.devices;
        const deviceId = this.deviceId(device);
        const messageId = `p${counter.toString(36)}`;
        this.#pushDevice.set(messageId, device);
        const now = Date.now();
        const push = {
          deviceId,
          messageId,
          type: "soak",
          body: { n: counter },
          expiresAt: now + 30 * 60_000,
          createdAt: now,
        };
        producer.send(downlinkRecord(topic, push), { timeoutMs: 10_000 }).then(
          () => this.#pushesSent.add(messageId),
          () => {},
        );
      }
      sent += burst;
      await delay(10);
    }
  }

  /** Acked requests with no final answer yet. */
  openAcked(): number {
    let open = 0;
    for (const record of this.#requests.values()) if (record.outcome === "open" && record.ackedAt !== 0) open += 1;
    return open;
  }

  /** Waits until every acked request is answered and every sent push delivered, or `graceMs` passed. */
  async settle(graceMs: number): Promise<number> {
    const started = Date.now();
    while (Date.now() - started < graceMs) {
      let open = 0;
      for (const record of this.#requests.values()) if (record.outcome === "open") open += 1;
      let pushesOpen = 0;
      for (const id of this.#pushesSent) if (!this.#pushesDelivered.has(id)) pushesOpen += 1;
      if (open === 0 && pushesOpen === 0) break;
      await delay(200);
    }
    return Date.now() - started;
  }

  /** Latency percentile (ms) of answered requests sent in [from, to). */
  percentile(p: number, from = 0, to = Number.POSITIVE_INFINITY): number {
    const latencies: number[] = [];
    for (const record of this.#requests.values()) {
      if (record.outcome !== "res" || record.sentAt < from || record.sentAt >= to) continue;
      latencies.push(record.doneAt - record.sentAt);
    }
    if (latencies.length === 0) return Number.NaN;
    latencies.sort((a, b) => a - b);
    return latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] as number;
  }

  /**
   * From `faultAt` to the send time of the last request that saw trouble (an error, a retry, an
   * answer slower than `slowMs`, or no answer): after that, every request went through.
   */
  recoveryMs(faultAt: number, slowMs: number): number {
    let last = faultAt;
    for (const record of this.#requests.values()) {
      if (record.sentAt < faultAt) continue;
      const bad = record.outcome !== "res" || record.retries > 0 || record.doneAt - record.sentAt > slowMs;
      if (bad && record.sentAt > last) last = record.sentAt;
    }
    return last - faultAt;
  }

  stats(): LoadStats {
    let acked = 0;
    let answered = 0;
    let answeredOk = 0;
    let wrong = 0;
    let lost = 0;
    let openUnacked = 0;
    let answeredUnacked = 0;
    const errors: Record<string, number> = {};
    for (const record of this.#requests.values()) {
      if (record.ackedAt !== 0) acked += 1;
      else if (record.outcome !== "open") answeredUnacked += 1;
      if (record.outcome === "res") {
        answered += 1;
        answeredOk += 1;
      } else if (record.outcome === "wrong") {
        answered += 1;
        wrong += 1;
      } else if (record.outcome === "error" && record.ackedAt !== 0 && DEVICE_SIDE.has(record.code ?? "")) {
        lost += 1;
        const code = `${record.code}-after-ack`;
        errors[code] = (errors[code] ?? 0) + 1;
      } else if (record.outcome === "error") {
        answered += 1;
        const code = record.code ?? "unknown";
        errors[code] = (errors[code] ?? 0) + 1;
      } else if (record.ackedAt !== 0) lost += 1;
      else openUnacked += 1;
    }
    let pushesDelivered = 0;
    for (const id of this.#pushesSent) if (this.#pushesDelivered.has(id)) pushesDelivered += 1;
    return {
      sent: this.#requests.size,
      acked,
      answered,
      answeredOk,
      errors,
      wrong,
      lost,
      answeredUnacked,
      openUnacked,
      retried: this.#retried,
      pushesSent: this.#pushesSent.size,
      pushesDelivered,
      pushesLost: this.#pushesSent.size - pushesDelivered,
      reconnects: this.#reconnects,
      p50: this.percentile(50),
      p99: this.percentile(99),
    };
  }

  /** Sent pushes not delivered whose device's client had stopped on `bye replaced`. */
  pushesLostToReplaced(): number {
    let count = 0;
    for (const id of this.#pushesSent) {
      if (this.#pushesDelivered.has(id)) continue;
      const device = this.#pushDevice.get(id);
      if (device !== undefined && this.replaced.has(device)) count += 1;
    }
    return count;
  }

  /** Ids of acked requests still open (for diagnosing a loss). */
  lostIds(limit = 20): string[] {
    const ids: string[] = [];
    for (const [id, record] of this.#requests) {
      if (record.outcome === "open" && record.ackedAt !== 0) ids.push(`${id}@${this.deviceId(record.device)}`);
      if (ids.length >= limit) break;
    }
    return ids;
  }

  async close(): Promise<void> {
    this.#sending = false;
    await Promise.allSettled([this.#loop, this.#pushLoop]);
    await Promise.allSettled(this.clients.map((client) => client.close()));
    await this.#producer?.close().catch(() => {});
  }
}
