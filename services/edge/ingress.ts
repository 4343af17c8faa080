import type { Producer } from "../../shared/broker/types.ts";
import type { Logger } from "../../shared/log/index.ts";
import { encodeAck, type RequestFrame } from "../../shared/protocol/index.ts";
import { requestRecord } from "../../shared/records/index.ts";
import { endFailed, SpanKind, type Tracing, traceparentOf } from "../../shared/telemetry/index.ts";
import type { EdgeConfig } from "./config.ts";
import type { EdgeMetrics } from "./metrics.ts";
import { Paused, type Session } from "./session.ts";

/** Awaited answers older than this are forgotten (their request was lost upstream). */
const AWAIT_FORGET_MS = 60 * 60 * 1000;

export interface IngressDeps {
  readonly config: EdgeConfig;
  readonly log: Logger;
  readonly metrics: EdgeMetrics;
  readonly now: () => number;
  readonly producer: Producer;
  readonly slot: number;
  /** False while this edge cannot prove its slot lease: no ack nor `unavailable` is written then. */
  readonly fence: () => boolean;
  /** Spans `receive` (frame read to ack) and `produce` (send to delivery report); none without it. */
  readonly tracing?: Tracing | undefined;
}

function awaitKey(connId: string, requestId: string): string {
  return `${connId}\n${requestId}`;
}

/**
 * Requests to Kafka: the rate limit and open-id check, the record (the body as the device's own
 * bytes), the ack once the broker confirmed the durable write, and backpressure: a device with
 * too many open requests, or every device while too many sends await their confirmation, is
 * not read until that eases.
 */
export class Ingress {
  readonly #deps: IngressDeps;
  /** Requests sent and not answered yet: connId + id -> time read. */
  readonly #awaiting = new Map<string, number>();
  /** Sessions not read because the producer has too much unconfirmed. */
  readonly #paused = new Set<Session>();
  #failureLoggedAt = Number.NEGATIVE_INFINITY;
  #failuresUnlogged = 0;
  #lastForgetAt = 0;

  constructor(deps: IngressDeps) {
    this.#deps = deps;
  }

  /** Requests sent whose answer this edge has not seen yet. */
  get awaiting(): number {
    return this.#awaiting.size;
  }

  request(session: Session, deviceId: string, frame: RequestFrame): void {
    const { config, metrics, producer } = this.#deps;
    const id = frame.id;
    const key = awaitKey(session.connId, id);
    if (this.#awaiting.has(key)) {
      session.sendError({ code: "duplicate_id", id, message: "a request with this id is still open" });
      return;
    }
    const now = this.#deps.now();
    const retryAfterMs = session.takeToken(now);
    if (retryAfterMs > 0) {
      session.sendError({ code: "rate_limited", id, retryAfterMs });
      return;
    }
    this.#awaiting.set(key, now);
    session.requestOpened();
    metrics.requests.inc();
    const tracing = this.#deps.tracing;
    if (tracing !== undefined) {
      this.#traced(tracing, session, deviceId, frame, key, now);
      return;
    }
    const record = requestRecord(
      config.common.names.requestsTopic,
      { slot: this.#deps.slot, edgeId: config.edgeId, connId: session.connId },
      { deviceId, id, type: frame.type, receivedAt: now },
      frame.bodyJson,
    );
    producer.send(record, { timeoutMs: config.produceTimeoutMs }).then(
      () => this.#acked(session, id, now),
      (error: unknown) => this.#failed(session, key, id, error),
    );
    this.#backpressure(session);
  }

  /** {@link request} with spans: the record carries the `produce` span's trace context. */
  #traced(tracing: Tracing, session: Session, deviceId: string, frame: RequestFrame, key: string, now: number): void {
    const { config, producer } = this.#deps;
    const id = frame.id;
    const attributes = { "tether.device_id": deviceId, "tether.request_id": id, "tether.request_type": frame.type };
    const receive = tracing.span("tether.receive", SpanKind.SERVER, undefined, attributes);
    const produce = tracing.span("tether.produce", SpanKind.PRODUCER, receive, {
      "messaging.system": "kafka",
      "messaging.destination.name": config.common.names.requestsTopic,
    });
    const record = requestRecord(
      config.common.names.requestsTopic,
      { slot: this.#deps.slot, edgeId: config.edgeId, connId: session.connId },
      { deviceId, id, type: frame.type, receivedAt: now },
      frame.bodyJson,
      traceparentOf(produce),
    );
    producer.send(record, { timeoutMs: config.produceTimeoutMs }).then(
      () => {
        produce.end();
        receive.end();
        this.#acked(session, id, now);
      },
      (error: unknown) => {
        endFailed(produce, error);
        endFailed(receive, error);
        this.#failed(session, key, id, error);
      },
    );
    this.#backpressure(session);
  }

  #backpressure(session: Session): void {
    const { config, producer } = this.#deps;
    if (producer.queued() > config.limits.maxProducerQueue) {
      session.pause(Paused.Producer);
      this.#paused.add(session);
    }
  }

  /**
   * An answer for the request arrived (whatever becomes of it): it is no longer open on the
   * connection that sent it, if that connection is still here.
   */
  answered(connId: string, requestId: string, session: Session | undefined): void {
    if (this.#awaiting.delete(awaitKey(connId, requestId))) session?.requestFinished();
  }

  /** The session is gone: it is no longer waiting for the producer. */
  forgetSession(session: Session): void {
    this.#paused.delete(session);
  }

  /** Drops awaited answers so old that their requests were lost upstream. */
  sweep(now: number): void {
    if (now - this.#lastForgetAt < 60_000) return;
    this.#lastForgetAt = now;
    for (const [key, at] of this.#awaiting) if (now - at > AWAIT_FORGET_MS) this.#awaiting.delete(key);
  }

  #acked(session: Session, id: string, receivedAt: number): void {
    const { metrics } = this.#deps;
    metrics.acks.inc();
    metrics.ackLatency.observe((this.#deps.now() - receivedAt) / 1000);
    // Without a proven lease the ack is left out (the request is written all the same; its
    // answer comes through the slot once the lease is proven again, or through its new holder).
    if (session.isOpen && this.#deps.fence()) {
      session.write(encodeAck(id));
      metrics.frameOut("ack");
    }
    this.#maybeResume();
  }

  #failed(session: Session, key: string, id: string, error: unknown): void {
    // Thousands a second when the broker is away: one line a second says it all.
    const now = this.#deps.now();
    if (now - this.#failureLoggedAt >= 1000) {
      this.#deps.log.warn(
        { err: error, connId: session.connId, alsoFailedSinceLastLine: this.#failuresUnlogged },
        "request not taken by the broker",
      );
      this.#failureLoggedAt = now;
      this.#failuresUnlogged = 0;
    } else {
      this.#failuresUnlogged += 1;
    }
    if (this.#awaiting.delete(key)) session.requestFinished();
    // Like acks, only while the lease is proven: an edge that lost its slot writes nothing.
    if (session.isOpen && this.#deps.fence()) {
      session.sendError({ code: "unavailable", id, message: "broker unavailable, retry", retryable: true });
    }
    this.#maybeResume();
  }

  #maybeResume(): void {
    if (this.#paused.size === 0) return;
    if (this.#deps.producer.queued() > this.#deps.config.limits.maxProducerQueue / 2) return;
    for (const session of this.#paused) session.unpause(Paused.Producer);
    this.#paused.clear();
  }
}
