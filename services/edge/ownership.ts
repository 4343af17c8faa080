import type { Limiter } from "../../shared/async/index.ts";
import type { Authenticator } from "../../shared/auth/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import { ByeReason, encodeBye, encodeWelcome, type HelloFrame } from "../../shared/protocol/index.ts";
import type { ClaimResult, ConnectionRecord, Registry } from "../../shared/registry/types.ts";
import type { EdgeConfig } from "./config.ts";
import type { EdgeMetrics } from "./metrics.ts";
import type { Outbound } from "./outbound.ts";
import type { Session } from "./session.ts";

export interface OwnershipDeps {
  readonly config: EdgeConfig;
  readonly log: Logger;
  readonly metrics: EdgeMetrics;
  readonly registry: Registry;
  readonly auth: Authenticator;
  readonly now: () => number;
  readonly slot: number;
  readonly outbound: Outbound;
  /** Sessions of this edge by connId. */
  readonly session: (connId: string) => Session | undefined;
  /** False once the edge stops taking devices. */
  readonly running: () => boolean;
  /** False while this edge cannot prove its slot lease: hellos are answered `unavailable`. */
  readonly fence: () => boolean;
  /** Registry calls of hellos (claim, outbox read): a reconnect storm queues here, in order. */
  readonly helloCalls: Limiter;
  /** Registry writes nobody waits for (releases, restores). */
  readonly background: Limiter;
  /** Welcome is out: serve what was held and waiting for the device. */
  readonly welcomed: (session: Session) => Promise<void>;
}

/** Random reconnect delay within the drain window, so devices do not come back all at once. */
export function reconnectMs(config: EdgeConfig): number {
  return Math.floor(Math.random() * Math.max(1, config.drainMs));
}

/**
 * Who owns each device: hello (token check, ownership claim, takeover of older connections here
 * or on other edges, welcome) and the release of the record when a connection ends.
 */
export class Ownership {
  readonly #deps: OwnershipDeps;
  /** The open session that owns each device on this edge. */
  readonly #owners = new Map<string, Session>();

  constructor(deps: OwnershipDeps) {
    this.#deps = deps;
  }

  get size(): number {
    return this.#owners.size;
  }

  /** The device's open session on this edge, if it has one. */
  owner(deviceId: string): Session | undefined {
    const session = this.#owners.get(deviceId);
    return session?.isOpen === true ? session : undefined;
  }

  /** A hello was read on a session waiting for it. */
  hello(session: Session, frame: HelloFrame): void {
    session.authenticating(frame.deviceId);
    this.#authenticate(session, frame.deviceId, frame.token).catch((error: unknown) => {
      this.#deps.log.error({ err: error, connId: session.connId }, "hello failed");
      if (session.state.phase !== "authenticating") return;
      session.sendError({ code: "unavailable", message: "edge could not complete hello", retryable: true });
      session.close("unavailable");
    });
  }

  async #authenticate(session: Session, deviceId: string, token: string | undefined): Promise<void> {
    const { config, log, registry } = this.#deps;
    const verdict = await this.#deps.auth.verify(deviceId, token);
    if (session.state.phase !== "authenticating") return;
    if (!verdict.ok) {
      log.info({ connId: session.connId, deviceId, reason: verdict.reason }, "device refused");
      session.sendError({ code: "unauthorized", message: verdict.reason, retryable: verdict.retryable });
      session.close("unauthorized");
      return;
    }
    if (!this.#deps.fence()) {
      session.sendError({ code: "unavailable", message: "edge cannot reach its registry; retry", retryable: true });
      session.close("unavailable");
      return;
    }
    const connId = session.connId;
    let claim: ClaimResult;
    try {
      // A hello that waited in the queue behind a storm may belong to a socket the device has
      // given up on since: claiming for it would take the device's record from the connection
      // it opened instead.
      const claimed = await this.#deps.helloCalls.run(async () =>
        session.state.phase !== "authenticating"
          ? null
          : registry.connections.claim({
              deviceId,
              edgeId: config.edgeId,
              slot: this.#deps.slot,
              connId,
              connectedAt: this.#deps.now(),
            }),
      );
      if (claimed === null) return;
      claim = claimed;
    } catch (error) {
      log.warn({ err: error, connId, deviceId }, "ownership claim failed");
      if (session.state.phase === "authenticating") {
        session.sendError({ code: "unavailable", message: "registry unavailable, retry", retryable: true });
        session.close("unavailable");
      }
      return;
    }
    if (session.state.phase !== "authenticating" || !this.#deps.running()) {
      // Gone while claiming: the record must not outlive the socket, and a connection this
      // claim displaced (the device's live one, opened after it gave up on this socket) gets
      // its record back rather than none.
      this.#release(deviceId, connId, claim.previous);
      if (session.state.phase === "authenticating") {
        session.close(ByeReason.Draining, encodeBye(ByeReason.Draining, reconnectMs(config)));
      }
      return;
    }
    const epoch = claim.record.epoch;
    if (!this.#takeOver(session, deviceId, epoch, claim.previous)) return;
    this.#owners.set(deviceId, session);
    session.opened(deviceId, epoch);
    session.touch(this.#deps.now());
    const limits = config.limits;
    session.write(
      encodeWelcome({
        connId,
        edgeId: config.edgeId,
        heartbeatMs: limits.heartbeatMs,
        maxFrameBytes: limits.maxFrameBytes,
      }),
    );
    this.#deps.metrics.frameOut("welcome");
    this.#deps.outbound.presence({ event: "connected", deviceId, edgeId: config.edgeId, connId, at: this.#deps.now() });
    await this.#deps.welcomed(session);
  }

  /**
   * Replaces the device's older connections: the one on this edge, and the one the claim took
   * the record from (here, or on another edge through a control record). False when a newer
   * connection of the device already won on this edge.
   */
  #takeOver(session: Session, deviceId: string, epoch: number, previous: ConnectionRecord | null): boolean {
    const { config } = this.#deps;
    const local = this.#owners.get(deviceId);
    if (local !== undefined && local !== session) {
      const localEpoch = local.state.phase === "open" ? local.state.epoch : 0;
      if (localEpoch > epoch) {
        session.close(ByeReason.Replaced, encodeBye(ByeReason.Replaced));
        return false;
      }
      local.close(ByeReason.Replaced, encodeBye(ByeReason.Replaced));
    }
    if (previous === null || previous.connId === session.connId) return true;
    if (previous.edgeId === config.edgeId && previous.slot === this.#deps.slot) {
      const older = this.#deps.session(previous.connId);
      if (older !== undefined && !older.isClosing) older.close(ByeReason.Replaced, encodeBye(ByeReason.Replaced));
    } else {
      this.#deps.outbound.control(previous.slot, {
        op: "close",
        deviceId,
        connId: previous.connId,
        reason: "replaced",
      });
    }
    return true;
  }

  /** An open session ended: the device is no longer here. */
  ended(session: Session, deviceId: string, reason: string): void {
    if (this.#owners.get(deviceId) === session) this.#owners.delete(deviceId);
    this.#release(deviceId, session.connId, null);
    const { config } = this.#deps;
    this.#deps.outbound.presence({
      event: "disconnected",
      deviceId,
      edgeId: config.edgeId,
      connId: session.connId,
      at: this.#deps.now(),
      reason,
    });
  }

  #release(deviceId: string, connId: string, previous: ConnectionRecord | null): void {
    const connections = this.#deps.registry.connections;
    const write =
      previous !== null && previous.connId !== connId
        ? () => connections.restore(connId, previous)
        : () => connections.release(deviceId, connId);
    this.#deps.background.run(write).catch((error: unknown) => {
      this.#deps.log.warn({ err: error, deviceId, connId }, "ownership release failed; the record dies with the lease");
    });
  }
}
