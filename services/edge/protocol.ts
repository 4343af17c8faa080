import { ByeReason, encodeBye, PONG_LINE, parseClientFrame } from "../../shared/protocol/index.ts";
import type { EdgeConfig } from "./config.ts";
import type { Delivery } from "./delivery.ts";
import type { Ingress } from "./ingress.ts";
import { CLOSE_GRACE_MS } from "./listener.ts";
import type { EdgeMetrics } from "./metrics.ts";
import type { Ownership } from "./ownership.ts";
import type { Session } from "./session.ts";

export interface ProtocolDeps {
  readonly config: EdgeConfig;
  readonly metrics: EdgeMetrics;
  readonly now: () => number;
  readonly ownership: Ownership;
  readonly ingress: Ingress;
  readonly delivery: Delivery;
}

/**
 * The device protocol on one session: each line is parsed and handed to the room that serves it
 * (hello to ownership, requests to ingress, acks to delivery), and the session's timers are
 * swept. Bad lines get their error frames here.
 */
export class Protocol {
  readonly #deps: ProtocolDeps;

  constructor(deps: ProtocolDeps) {
    this.#deps = deps;
  }

  line(session: Session, line: Buffer): void {
    const { metrics } = this.#deps;
    const state = session.state;
    if (state.phase === "closing") return;
    session.touch(this.#deps.now());
    if (state.phase === "authenticating") {
      // The stream after a hello belongs to the session it opens: a client may send its first
      // requests in the same segment. They wait (reading paused) until welcome is written.
      session.holdEarly(line);
      return;
    }
    const parsed = parseClientFrame(line);
    if (!parsed.ok) {
      metrics.frameIn("other");
      if (parsed.code === "unknown_frame" && state.phase !== "open") {
        this.#notAuthenticated(session);
        return;
      }
      if (parsed.code === "unknown_frame") {
        session.goodFrame();
        session.sendError({ code: "unknown_frame", message: parsed.message });
        return;
      }
      session.sendError({ code: "bad_frame", id: parsed.id, message: parsed.message });
      // Before welcome the only valid line is a hello: a failed one ends the connection.
      if (state.phase !== "open") session.close("bad_hello");
      else if (session.badFrame()) session.close("bad_frames");
      return;
    }
    session.goodFrame();
    const frame = parsed.frame;
    metrics.frameIn(frame.t);
    if (state.phase !== "open") {
      if (frame.t === "hello") this.#deps.ownership.hello(session, frame);
      else this.#notAuthenticated(session);
      return;
    }
    switch (frame.t) {
      case "req":
        this.#deps.ingress.request(session, state.deviceId, frame);
        return;
      case "ack":
        this.#deps.delivery.acked(session, state.deviceId, frame.id);
        return;
      case "ping":
        session.write(PONG_LINE);
        metrics.frameOut("pong");
        return;
      case "bye":
        session.close("bye");
        return;
      case "hello":
        session.sendError({ code: "bad_frame", message: "already authenticated: hello is sent once" });
        if (session.badFrame()) session.close("bad_frames");
        return;
    }
  }

  /** Lines that came right behind the hello, once welcome is out. */
  replayEarly(session: Session): void {
    for (const line of session.takeEarly()) {
      if (!session.isOpen) return;
      this.line(session, line);
    }
  }

  #notAuthenticated(session: Session): void {
    session.sendError({ code: "not_authenticated", message: "send hello and wait for welcome first" });
    session.close("not_authenticated");
  }

  /** Hello and idle timeouts, and closes that take too long to flush. */
  sweep(sessions: Iterable<Session>, now: number): void {
    const { config } = this.#deps;
    const limits = config.limits;
    const idleMs = 2 * limits.heartbeatMs;
    for (const session of sessions) {
      const state = session.state;
      switch (state.phase) {
        case "hello":
          if (now - session.openedAt >= limits.helloTimeoutMs) {
            session.sendError({ code: "hello_timeout", message: `no hello within ${limits.helloTimeoutMs} ms` });
            session.close("hello_timeout");
          }
          break;
        case "authenticating":
          if (now - session.openedAt >= 2 * limits.helloTimeoutMs + config.produceTimeoutMs) {
            session.sendError({
              code: "unavailable",
              message: "hello could not be completed in time",
              retryable: true,
            });
            session.close("unavailable");
          }
          break;
        case "open":
          if (now - session.lastSeen >= (session.idleMs ?? idleMs))
            session.close(ByeReason.IdleTimeout, encodeBye(ByeReason.IdleTimeout));
          break;
        case "closing":
          if (now - state.at >= CLOSE_GRACE_MS) session.socket.destroy();
          break;
      }
    }
  }
}
