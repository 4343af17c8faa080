import type { Limiter } from "../../shared/async/index.ts";
import type { IncomingMessage, Producer } from "../../shared/broker/types.ts";
import { ErrorCode, TetherError } from "../../shared/errors/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import { ByeReason, encodeBye, toLineJson } from "../../shared/protocol/index.ts";
import { type ControlRecord, Header, ReplyKind } from "../../shared/records/index.ts";
import type { ConnectionRecord, Registry } from "../../shared/registry/types.ts";
import type { EdgeConfig } from "./config.ts";
import type { Ingress } from "./ingress.ts";
import type { EdgeMetrics } from "./metrics.ts";
import type { Outbound } from "./outbound.ts";
import type { Ownership } from "./ownership.ts";
import type { Session } from "./session.ts";

const NEWLINE = Buffer.from("\n");
const ERROR_PREFIX = Buffer.from('{"t":"error"');

export interface DeliveryDeps {
  readonly config: EdgeConfig;
  readonly log: Logger;
  readonly metrics: EdgeMetrics;
  readonly registry: Registry;
  readonly now: () => number;
  readonly slot: number;
  readonly producer: Producer;
  readonly outbound: Outbound;
  readonly ownership: Ownership;
  readonly ingress: Ingress;
  readonly session: (connId: string) => Session | undefined;
  readonly helloCalls: Limiter;
  readonly background: Limiter;
}

/**
 * The reply slot's consumer: every record of this edge's partition of `replies` is delivered to
 * the connection it is for, forwarded to the slot of the edge that holds the device now, or
 * parked in the device's outbox; control records close or wake connections here.
 */
export class Delivery {
  readonly #deps: DeliveryDeps;

  constructor(deps: DeliveryDeps) {
    this.#deps = deps;
  }

  /**
   * One record of a slot; resolves once it is handled (then its offset may be committed).
   * `fence` says whether this edge can still prove its lease on the slot the record came from:
   * it is asked before every write to a device and after every wait, and while it says no the
   * record is refused (and retried by the consumer), so a zombie writes nothing.
   */
  async onReply(message: IncomingMessage, fence: () => boolean): Promise<void> {
    assertFenced(fence);
    const headers = message.headers;
    const kind = headers[Header.Kind] ?? ReplyKind.Answer;
    const deviceId = headers[Header.Device] ?? message.key;
    if (deviceId === undefined || deviceId === null || deviceId === "") {
      this.#deps.metrics.reply("dropped");
      this.#deps.log.warn({ partition: message.partition, offset: message.offset }, "reply without a device dropped");
      return;
    }
    if (kind === ReplyKind.Answer) {
      const target = this.#answerTarget(message, deviceId);
      if (target !== undefined) this.#write(target, message, ReplyKind.Answer);
      else await this.#route(message, deviceId, kind, fence);
      return;
    }
    if (kind === ReplyKind.Push) {
      const owner = this.#deps.ownership.owner(deviceId);
      if (owner !== undefined) this.#write(owner, message, ReplyKind.Push);
      else await this.#route(message, deviceId, kind, fence);
      return;
    }
    if (kind === ReplyKind.Control) {
      this.#control(message);
      return;
    }
    this.#deps.metrics.reply("dropped");
    this.#deps.log.warn({ kind, offset: message.offset }, "reply of unknown kind dropped");
  }

  /** The open session an answer is for, when it is still the device's owner here. */
  #answerTarget(message: IncomingMessage, deviceId: string): Session | undefined {
    const connId = message.headers[Header.Conn];
    if (connId === undefined) return undefined;
    const session = this.#deps.session(connId);
    const requestId = message.headers[Header.RequestId];
    if (requestId !== undefined) this.#deps.ingress.answered(connId, requestId, session);
    return session !== undefined && this.#deps.ownership.owner(deviceId) === session ? session : undefined;
  }

  /** Writes an answer or push frame to a session. */
  #write(session: Session, message: IncomingMessage, kind: ReplyKind): void {
    const { metrics } = this.#deps;
    const value = oneLine(message.value);
    session.write(value);
    if (value[value.length - 1] !== 10) session.write(NEWLINE);
    metrics.reply("delivered");
    if (kind === ReplyKind.Push) {
      metrics.frameOut("push");
      const messageId = message.headers[Header.MessageId] ?? pushIdOf(value.toString("utf8"));
      if (messageId !== undefined) session.pushWritten(messageId);
      return;
    }
    metrics.frameOut(value.subarray(0, ERROR_PREFIX.length).equals(ERROR_PREFIX) ? "error" : "res");
    const receivedAt = Number(message.headers[Header.ReceivedAt]);
    if (receivedAt > 0) metrics.replyLatency.observe(Math.max(0, this.#deps.now() - receivedAt) / 1000);
  }

  /**
   * A reply whose connection is not here: deliver to the device's connection on this edge,
   * forward to the slot of the edge that owns it, or park it in the outbox.
   */
  async #route(message: IncomingMessage, deviceId: string, kind: ReplyKind, fence: () => boolean): Promise<void> {
    const { config, registry } = this.#deps;
    const record = await registry.connections.get(deviceId);
    assertFenced(fence);
    if (record !== null) {
      if (this.#isHere(record)) {
        const session = this.#deps.session(record.connId);
        if (session?.isOpen === true) {
          this.#write(session, message, kind);
          return;
        }
      } else if (await this.#leaseLive(record)) {
        const hops = Number(message.headers[Header.Hops] ?? "0") || 0;
        if (hops < config.maxHops) {
          await this.#deps.producer.send(
            {
              topic: config.common.names.repliesTopic,
              partition: record.slot,
              key: deviceId,
              value: message.value,
              headers: { ...message.headers, [Header.Conn]: record.connId, [Header.Hops]: String(hops + 1) },
            },
            { timeoutMs: config.produceTimeoutMs },
          );
          this.#deps.metrics.reply("forwarded");
          return;
        }
        this.#deps.log.warn({ deviceId, hops }, "reply forwarded too often; parking it");
      }
    }
    if (kind === ReplyKind.Push) {
      // The router stored the push in the outbox already; it goes out on the next connection.
      this.#deps.metrics.reply("parked");
      return;
    }
    await this.#park(message, deviceId);
  }

  #isHere(record: ConnectionRecord): boolean {
    return record.edgeId === this.#deps.config.edgeId && record.slot === this.#deps.slot;
  }

  async #leaseLive(record: ConnectionRecord): Promise<boolean> {
    const lease = await this.#deps.registry.leases.get(record.slot);
    return lease !== null && lease.edgeId === record.edgeId && lease.leaseUntil > this.#deps.now();
  }

  async #park(message: IncomingMessage, deviceId: string): Promise<void> {
    const { config, registry } = this.#deps;
    const now = this.#deps.now();
    const requestId = message.headers[Header.RequestId];
    const expiresHeader = Number(message.headers[Header.ExpiresAt]);
    let frame = message.value.toString("utf8");
    if (frame.endsWith("\n")) frame = frame.trimEnd();
    await registry.outbox.put({
      deviceId,
      messageId: requestId === undefined ? `answer:${message.partition}:${message.offset}` : `answer:${requestId}`,
      frame,
      createdAt: now,
      expiresAt: expiresHeader > now ? expiresHeader : now + config.outboxTtlMs,
    });
    this.#deps.metrics.reply("parked");
    // The device may have connected between our lookup and the put, after its welcome read the
    // outbox: look again and have its edge deliver the outbox if so.
    const owner = await registry.connections.get(deviceId);
    if (owner === null) return;
    if (this.#isHere(owner)) {
      const session = this.#deps.session(owner.connId);
      if (session?.isOpen === true) await this.deliverOutbox(session, deviceId);
    } else if (await this.#leaseLive(owner)) {
      this.#deps.outbound.control(owner.slot, { op: "deliver_outbox", deviceId });
    }
  }

  #control(message: IncomingMessage): void {
    let control: ControlRecord;
    try {
      control = JSON.parse(message.value.toString("utf8")) as ControlRecord;
    } catch {
      this.#deps.metrics.reply("dropped");
      return;
    }
    if (control.op === "close") {
      const session = this.#deps.session(control.connId);
      if (session !== undefined && session.deviceId === control.deviceId && !session.isClosing) {
        const reason = control.reason === "kicked" ? ByeReason.Kicked : ByeReason.Replaced;
        session.close(reason, encodeBye(reason));
      }
      return;
    }
    if (control.op === "deliver_outbox") {
      const owner = this.#deps.ownership.owner(control.deviceId);
      if (owner !== undefined) this.deliverOutbox(owner, control.deviceId).catch(() => {});
    }
  }

  /** Writes a device's waiting messages: answers are deleted once written, pushes once acked. */
  async deliverOutbox(session: Session, deviceId: string): Promise<void> {
    const { registry, metrics } = this.#deps;
    let entries: Awaited<ReturnType<Registry["outbox"]["list"]>>;
    try {
      entries = await this.#deps.helloCalls.run(() => registry.outbox.list(deviceId, 1000));
    } catch (error) {
      this.#deps.log.warn({ err: error, deviceId }, "outbox read failed; delivered on the next connection");
      return;
    }
    for (const entry of entries) {
      if (!session.isOpen) return;
      session.write(`${toLineJson(entry.frame.trim())}\n`);
      if (pushIdOf(entry.frame) !== undefined) {
        metrics.frameOut("push");
        session.pushWritten(entry.messageId);
      } else {
        metrics.frameOut(entry.frame.startsWith('{"t":"error"') ? "error" : "res");
        metrics.reply("delivered");
        this.#deleteEntry(deviceId, entry.messageId);
      }
    }
  }

  /** The device acked a push written to this session: it leaves the outbox. */
  pushAcked(session: Session, deviceId: string, messageId: string): void {
    if (session.pushAcked(messageId)) this.#deleteEntry(deviceId, messageId);
  }

  #deleteEntry(deviceId: string, messageId: string): void {
    this.#deps.background
      .run(() => this.#deps.registry.outbox.delete(deviceId, messageId))
      .catch((error: unknown) => {
        this.#deps.log.warn(
          { err: error, deviceId, messageId },
          "outbox delete failed; the message may be delivered again",
        );
      });
  }
}

function assertFenced(fence: () => boolean): void {
  if (!fence()) throw new TetherError(ErrorCode.Closed, "slot lease not proven; not delivering");
}

/**
 * A reply value as one line. Producers write compact JSON, so this is normally the value itself;
 * a value with line breaks inside (pretty-printed JSON) would break the device's framing, and in
 * valid JSON they can only be whitespace, so they are removed.
 */
function oneLine(value: Buffer): Buffer {
  const lf = value.indexOf(10);
  const cr = value.indexOf(13);
  if ((lf === -1 || lf === value.length - 1) && cr === -1) return value;
  return Buffer.from(toLineJson(value.toString("utf8").trim()), "utf8");
}

/** The id of a push frame held as JSON text, or undefined when the text is not a push. */
function pushIdOf(frame: string): string | undefined {
  if (!frame.startsWith('{"t":"push"') && !frame.includes('"push"')) return undefined;
  try {
    const parsed = JSON.parse(frame) as { t?: unknown; id?: unknown };
    return parsed.t === "push" && typeof parsed.id === "string" ? parsed.id : undefined;
  } catch {
    return undefined;
  }
}
