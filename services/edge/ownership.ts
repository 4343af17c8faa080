import type { Limiter } from "../../shared/async/index.ts";
import type { Authenticator } from "../../shared/auth/index.ts";
import { ErrorCode, hasErrorCode } from "../../shared/errors/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import { ByeReason, encodeBye, encodeReplaced, encodeWelcome, type HelloFrame } from "../../shared/protocol/index.ts";
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
    session.authenticating(frame.deviceId, frame.ackAnswers === true);
    const helloAt = this.#deps.now();
    this.#authenticate(session, frame.deviceId, frame.token, helloAt).catch((error: unknown) => {
      this.#deps.log.error({ err: error, connId: session.connId }, "hello failed");
      if (session.state.phase !== "authenticating") return;
      session.sendError({ code: "unavailable", message: "edge could not complete hello", retryable: true });
      session.close("unavailable");
    });
  }

  /** A hello whose claim would land later than the hello timeout is dropped: the device gave up. */
  #stale(helloAt: number): boolean {
    return this.#deps.now() - helloAt > this.#deps.config.limits.helloTimeoutMs;
  }

  #refuse(session: Session, message: string): void {
    if (session.state.phase !== "authenticating") return;
    session.sendError({ code: "unavailable", message, retryable: true });
    session.close("unavailable");
  }

  async #authenticate(session: Session, deviceId: string, token: string | undefined, helloAt: number): Promise<void> {
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
      this.#refuse(session, "edge cannot reach its registry; retry");
      return;
    }
    const connId = session.connId;
    let claim: ClaimResult;
    try {
      // The hello's place in the device's order is taken as soon as it is read; a claim wins
      // only over older hellos, whenever it lands (a slow store cannot make an old hello win).
      // Taken before the claims' queue, so that the order is the hellos' and not the queue's.
      const attempt = await registry.connections.beginAttempt(deviceId);
      const claimed = await this.#deps.helloCalls.run(async () => {
        if (session.state.phase !== "authenticating" || this.#stale(helloAt)) return null;
        const at = this.#deps.now();
        return registry.connections.claim({
          deviceId,
          edgeId: config.edgeId,
          slot: this.#deps.slot,
          connId,
          connectedAt: at,
          attempt,
          protocol: session.protocol,
        });
      });
      if (claimed === null) {
        this.#refuse(session, "hello took too long; retry");
        return;
      }
      claim = claimed;
    } catch (error) {
      if (hasErrorCode(error, ErrorCode.Conflict)) {
        // A newer hello of the device claimed it first: this connection is already replaced.
        log.info({ connId, deviceId }, "hello overtaken by a newer one of the device");
        if (session.state.phase === "authenticating") session.close(ByeReason.Replaced, encodeReplaced());
        return;
      }
      log.warn({ err: error, connId, deviceId }, "ownership claim failed");
      this.#refuse(session, "registry unavailable, retry");
      return;
    }
    if (session.state.phase !== "authenticating" || !this.#deps.running() || this.#stale(helloAt)) {
      // Gone while claiming (or too late to count): the record must not outlive the socket, and
      // a connection this claim displaced (the device's live one) gets its record back.
      this.#release(deviceId, connId, claim.previous);
      if (!this.#deps.running() && session.state.phase === "authenticating") {
        session.close(ByeReason.Draining, encodeBye(ByeReason.Draining, reconnectMs(config)));
      } else this.#refuse(session, "hello took too long; retry");
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
        ...{ connId, edgeId: config.edgeId, heartbeatMs: limits.heartbeatMs, maxFrameBytes: limits.maxFrameBytes },
        ackAnswers: session.ackAnswers,
      }),
    );
    this.#deps.metrics.frameOut("welcome");
    const at = this.#deps.now();
    this.#deps.outbound.presence({ event: "connected", deviceId, edgeId: config.edgeId, connId, at, epoch });
    await this.#deps.welcomed(session);
  }

  /**
   * Replaces the device's older connections: the one on this edge, and the one the claim took
   * the record from (here, or on another edge through a control record). False when a newer
   * connection of the device already won on this edge.
   */
  #takeOver(session: Session, deviceId: string, epoch: number, previous: ConnectionRecord | null): boolean {
    const local = this.#owners.get(deviceId);
    if (local !== undefined && local !== session) {
      const localEpoch = local.state.phase === "open" ? local.state.epoch : 0;
      if (localEpoch > epoch) {
        session.close(ByeReason.Replaced, encodeReplaced(localEpoch));
        return false;
      }
      local.close(ByeReason.Replaced, encodeReplaced(epoch));
    }
    if (previous !== null && previous.connId !== session.connId) this.#closeDisplaced(deviceId, previous, epoch);
    return true;
  }

  /** Tells a connection that is no longer the device's owner to go, here or on its edge. */
  #closeDisplaced(deviceId: string, displaced: ConnectionRecord, epoch: number | undefined): void {
    const { config } = this.#deps;
    if (displaced.edgeId === config.edgeId && displaced.slot === this.#deps.slot) {
      const older = this.#deps.session(displaced.connId);
      if (older !== undefined && !older.isClosing) older.close(ByeReason.Replaced, encodeReplaced(epoch));
      return;
    }
    const order = { op: "close" as const, deviceId, connId: displaced.connId, reason: "replaced" as const };
    this.#deps.outbound.control(displaced.slot, epoch === undefined ? order : { ...order, epoch });
  }

  /** An open session ended: the device is no longer here. */
  ended(session: Session, deviceId: string, reason: string): void {
    if (this.#owners.get(deviceId) === session) this.#owners.delete(deviceId);
    this.#release(deviceId, session.connId, null);
    const { config } = this.#deps;
    this.#deps.outbound.presence({
      ...{
        event: "disconnected",
        deviceId,
        edgeId: config.edgeId,
        connId: session.connId,
        at: this.#deps.now(),
        reason,
      },
      ...(session.epoch > 0 ? { epoch: session.epoch } : {}),
      ...(session.will === undefined ? {} : { will: session.will }),
    });
  }

  #release(deviceId: string, connId: string, previous: ConnectionRecord | null): void {
    const connections = this.#deps.registry.connections;
    const restoring = previous !== null && previous.connId !== connId;
    const write = async () => {
      if (!restoring) {
        await connections.release(deviceId, connId);
        return;
      }
      // A newer claim landed meanwhile: the connection this claim displaced is not the owner
      // any more either, and is told so.
      if (!(await connections.restore(connId, previous))) this.#closeDisplaced(deviceId, previous, undefined);
    };
    this.#deps.background.run(write).catch((error: unknown) => {
      this.#deps.log.warn({ err: error, deviceId, connId }, "ownership release failed; the record dies with the lease");
    });
  }
}
