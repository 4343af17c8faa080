import type { Limiter } from "../../shared/async/index.ts";
import type { IncomingMessage, Pending, Producer } from "../../shared/broker/types.ts";
import { ErrorCode, TetherError } from "../../shared/errors/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import { ByeReason, encodeBye, toLineJson } from "../../shared/protocol/index.ts";
import {
  type AnswerReply,
  type ControlRecord,
  decodeReply,
  forwardedRecord,
  type PushReply,
  ReplyKind,
  readTraceParent,
} from "../../shared/records/index.ts";
import { ownerLive } from "../../shared/registry/index.ts";
import type { ConnectionRecord, Registry } from "../../shared/registry/types.ts";
import { SpanKind, type Tracing } from "../../shared/telemetry/index.ts";
import type { EdgeConfig } from "./config.ts";
import type { Ingress } from "./ingress.ts";
import type { EdgeMetrics } from "./metrics.ts";
import type { Outbound } from "./outbound.ts";
import type { Ownership } from "./ownership.ts";
import type { Session } from "./session.ts";

const NEWLINE = 10;
const ERROR_PREFIX = Buffer.from('{"t":"error"');
/** Outbox ids of parked answers; pushes keep the router's message id. */
const ANSWER_PREFIX = "answer:";

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
  /** A `deliver` span for each answer that carries a trace context; none without it. */
  readonly tracing?: Tracing | undefined;
}

/**
 * The reply slots' consumer: every record is delivered to the connection it is for, forwarded
 * to the slot of the edge that holds the device now, or parked in the device's outbox; control
 * records close or wake connections here. An answer counts as delivered only once it reached
 * the kernel (or, for a device that acknowledges answers, once it was acked); until then the
 * record's offset is not committed, and an answer whose connection ends first is parked.
 */
export class Delivery {
  readonly #deps: DeliveryDeps;

  constructor(deps: DeliveryDeps) {
    this.#deps = deps;
  }

  /**
   * One record of a slot. `fence` says whether this edge can still prove its lease on the slot
   * the record came from: it is asked before every write to a device and after every wait, and
   * while it says no the record is refused (and retried by the consumer), so a zombie writes
   * nothing.
   */
  async onReply(message: IncomingMessage, fence: () => boolean): Promise<undefined | Pending> {
    assertFenced(fence);
    const decoded = decodeReply(message);
    if (!decoded.ok) {
      this.#deps.metrics.reply("dropped");
      this.#deps.log.warn(
        { partition: message.partition, offset: message.offset, reason: decoded.reason },
        "reply dropped",
      );
      return undefined;
    }
    const reply = decoded.value;
    if (reply.kind === ReplyKind.Control) {
      this.#control(reply.control);
      return undefined;
    }
    if (reply.kind === ReplyKind.Answer) {
      const target = this.#answerTarget(reply);
      if (target !== undefined) return this.#deliverAnswer(target, reply, message);
    } else {
      const owner = this.#deps.ownership.owner(reply.deviceId);
      if (owner !== undefined) {
        this.#writePush(owner, reply);
        return undefined;
      }
    }
    return this.#route(message, reply, fence);
  }

  /** The open session an answer is for, when it is still the device's owner here. */
  #answerTarget(reply: AnswerReply): Session | undefined {
    if (reply.connId === null) return undefined;
    const session = this.#deps.session(reply.connId);
    if (reply.requestId !== null) this.#deps.ingress.answered(reply.connId, reply.requestId, session);
    return session !== undefined && this.#deps.ownership.owner(reply.deviceId) === session ? session : undefined;
  }

  /** Writes an answer; its offset becomes committable once it is delivered or parked. */
  #deliverAnswer(session: Session, reply: AnswerReply, message: IncomingMessage): Pending {
    const { metrics } = this.#deps;
    const frame = asLine(reply.frame);
    metrics.frameOut(frame.subarray(0, ERROR_PREFIX.length).equals(ERROR_PREFIX) ? "error" : "res");
    if (reply.receivedAt !== null)
      metrics.replyLatency.observe(Math.max(0, this.#deps.now() - reply.receivedAt) / 1000);
    const traceparent = this.#deps.tracing === undefined ? undefined : readTraceParent(message.headers);
    const span =
      traceparent === undefined
        ? undefined
        : this.#deps.tracing?.span("tether.deliver", SpanKind.CONSUMER, traceparent, {
            "tether.device_id": reply.deviceId,
            "tether.request_id": reply.requestId ?? "",
          });
    const durable = new Promise<void>((resolve, reject) => {
      session.writeAnswer(frame, reply.requestId, (delivered) => {
        if (span !== undefined) {
          span.setAttribute("tether.delivered", delivered);
          span.end();
        }
        if (delivered) {
          metrics.reply("delivered");
          resolve();
          return;
        }
        // Cut or closed before the answer got out (or was acked): keep it for the next connection.
        this.#park(message, reply).then(resolve, reject);
      });
    });
    return { durable };
  }

  #writePush(session: Session, reply: PushReply): void {
    session.write(asLine(reply.frame));
    this.#deps.metrics.reply("delivered");
    this.#deps.metrics.frameOut("push");
    if (reply.messageId !== null) session.pushWritten(reply.messageId);
  }

  /**
   * A reply whose connection is not here: deliver to the device's connection on this edge,
   * forward to the slot of the edge that owns it, or park it in the outbox.
   */
  async #route(
    message: IncomingMessage,
    reply: AnswerReply | PushReply,
    fence: () => boolean,
  ): Promise<undefined | Pending> {
    const { config, registry } = this.#deps;
    const deviceId = reply.deviceId;
    const record = await registry.connections.get(deviceId);
    assertFenced(fence);
    if (record !== null) {
      if (this.#isHere(record)) {
        const session = this.#deps.session(record.connId);
        if (session?.isOpen === true) {
          if (reply.kind === ReplyKind.Answer) return this.#deliverAnswer(session, reply, message);
          this.#writePush(session, reply);
          return undefined;
        }
      } else if (await ownerLive(registry.leases, record, this.#deps.now)) {
        if (reply.hops < config.maxHops) {
          const forwarded = forwardedRecord(config.common.names.repliesTopic, record.slot, message, record.connId);
          await this.#deps.producer.send(forwarded, { timeoutMs: config.produceTimeoutMs });
          this.#deps.metrics.reply("forwarded");
          return undefined;
        }
        this.#deps.log.warn({ deviceId, hops: reply.hops }, "reply forwarded too often; parking it");
      }
    }
    if (reply.kind === ReplyKind.Push) {
      // The router stored the push in the outbox already; it goes out on the next connection.
      this.#deps.metrics.reply("parked");
      return undefined;
    }
    await this.#park(message, reply);
    return undefined;
  }

  #isHere(record: ConnectionRecord): boolean {
    return record.edgeId === this.#deps.config.edgeId && record.slot === this.#deps.slot;
  }

  /** Stores an answer in the device's outbox (already decoded: the record is not read again). */
  async #park(message: IncomingMessage, reply: AnswerReply): Promise<void> {
    const deviceId = reply.deviceId;
    const { config, registry } = this.#deps;
    const now = this.#deps.now();
    let frame = reply.frame.toString("utf8");
    if (frame.endsWith("\n")) frame = frame.trimEnd();
    await registry.outbox.put({
      deviceId,
      messageId: `${ANSWER_PREFIX}${reply.requestId ?? `${message.partition}:${message.offset}`}`,
      frame,
      createdAt: now,
      expiresAt: reply.expiresAt !== null && reply.expiresAt > now ? reply.expiresAt : now + config.outboxTtlMs,
    });
    this.#deps.metrics.reply("parked");
    // The device may have connected between our lookup and the put, after its welcome read the
    // outbox: look again and have its edge deliver the outbox if so.
    const owner = await registry.connections.get(deviceId);
    if (owner === null) return;
    if (this.#isHere(owner)) {
      const session = this.#deps.session(owner.connId);
      if (session?.isOpen === true) await this.deliverOutbox(session, deviceId);
    } else if (await ownerLive(registry.leases, owner, this.#deps.now)) {
      this.#deps.outbound.control(owner.slot, { op: "deliver_outbox", deviceId });
    }
  }

  #control(control: ControlRecord): void {
    if (control.op === "close") {
      const session = this.#deps.session(control.connId);
      if (session !== undefined && session.deviceId === control.deviceId && !session.isClosing) {
        const reason = control.reason === "kicked" ? ByeReason.Kicked : ByeReason.Replaced;
        session.close(reason, encodeBye(reason));
      }
      return;
    }
    const owner = this.#deps.ownership.owner(control.deviceId);
    if (owner !== undefined) this.deliverOutbox(owner, control.deviceId).catch(() => {});
  }

  /**
   * Writes a device's waiting messages. An answer leaves the outbox once delivered (acked, for a
   * device that acknowledges answers); a push once the device acks it.
   */
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
      // Every park wakes the outbox again: what this connection was given already is not repeated.
      if (!session.firstOutboxOffer(entry.messageId)) continue;
      const frame = Buffer.from(`${toLineJson(entry.frame.trim())}\n`, "utf8");
      if (!entry.messageId.startsWith(ANSWER_PREFIX)) {
        session.write(frame);
        metrics.frameOut("push");
        session.pushWritten(entry.messageId);
        continue;
      }
      metrics.frameOut(entry.frame.startsWith('{"t":"error"') ? "error" : "res");
      session.writeAnswer(frame, entry.messageId.slice(ANSWER_PREFIX.length), (delivered) => {
        if (!delivered) return; // stays in the outbox for the next connection
        metrics.reply("delivered");
        this.#deleteEntry(deviceId, entry.messageId);
      });
    }
  }

  /** The device acked an answer or a push written to this session. */
  acked(session: Session, deviceId: string, id: string): void {
    if (session.answerAcked(id)) return;
    if (session.pushAcked(id)) this.#deleteEntry(deviceId, id);
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
 * A reply value as one line. Producers write compact JSON, so this is normally the value itself
 * with its newline; a value with line breaks inside (pretty-printed JSON) would break the
 * device's framing, and in valid JSON they can only be whitespace, so they are removed.
 */
function asLine(value: Buffer): Buffer {
  const lf = value.indexOf(NEWLINE);
  const cr = value.indexOf(13);
  if (lf === -1 && cr === -1) return Buffer.concat([value, Buffer.from("\n")]);
  if (lf === value.length - 1 && cr === -1) return value;
  return Buffer.from(`${toLineJson(value.toString("utf8").trim())}\n`, "utf8");
}
