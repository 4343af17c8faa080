import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { type AddressInfo, createServer, Socket as NetSocket, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createSecureContext, type SecureContext, TLSSocket } from "node:tls";
import { ErrorCode, TetherError } from "../../shared/errors/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import { ByeReason, encodeBye, encodeError, WireErrorCode } from "../../shared/protocol/index.ts";
import type { EdgeConfig } from "./config.ts";
import type { EdgeMetrics } from "./metrics.ts";
import { MqttWire } from "./mqtt-wire.ts";
import { takeProxyHeader } from "./proxy-protocol.ts";
import { Session, type SessionEvents, type UnwelcomedBudget } from "./session.ts";
import { WebSocketUpgrades } from "./websocket.ts";
import { ConnectionProtocol, type WireFactory } from "./wire.ts";
import { WriteBatch } from "./write-batch.ts";

/** How long a refused or closing socket may take to flush before it is destroyed. */
export const CLOSE_GRACE_MS = 2000;

/** A socket still reading its PROXY header or doing its TLS handshake. */
interface Handshake {
  readonly socket: Socket;
  readonly openedAt: number;
  readonly port: PortKind;
}

/** The edge's device ports: NDJSON over TCP, MQTT over TCP, and WebSocket (NDJSON or MQTT). */
export type PortKind = "ndjson" | "mqtt" | "ws";

/** A socket of the WebSocket port between its handshake and its upgrade. */
interface Upgrading {
  readonly handshake: Handshake;
  readonly source: string;
}

/** Where a device socket keeps its session, so that one set of listeners serves all sockets. */
const SESSION = Symbol("tether.session");
type TaggedSocket = Duplex & { [SESSION]?: Session };

function onData(this: Duplex, chunk: Buffer): void {
  (this as TaggedSocket)[SESSION]?.receive(chunk);
}
function onClose(this: Duplex): void {
  (this as TaggedSocket)[SESSION]?.socketClosed();
}
function ignore(): void {}

export interface ListenerOptions {
  readonly config: EdgeConfig;
  readonly log: Logger;
  readonly metrics: EdgeMetrics;
  readonly now: () => number;
  readonly events: SessionEvents;
  /** False while the edge is not taking devices: new sockets are sent away. */
  readonly accepting: () => boolean;
}

/**
 * The device listener: accepts sockets, reads the PROXY header and the TLS handshake per socket
 * (so sockets still handshaking are counted and swept like any unwelcomed one), keeps the
 * budgets of sockets not welcomed yet (edge-wide and per source address), and opens a
 * {@link Session} for each.
 */
export class DeviceListener implements UnwelcomedBudget {
  readonly #options: ListenerOptions;
  readonly #sessions = new Map<string, Session>();
  readonly #handshakes = new Set<Handshake>();
  readonly #unwelcomedBySource = new Map<string, number>();
  readonly #batch = new WriteBatch();
  readonly #connPrefix = `${randomBytes(4).toString("base64url")}.`;
  #connCounter = 0;
  #unwelcomed = 0;
  #server: Server | undefined;
  #mqttServer: Server | undefined;
  #wsServer: Server | undefined;
  #upgrades: WebSocketUpgrades | undefined;
  readonly #upgrading = new Map<Socket, Upgrading>();
  #secureContext: SecureContext | undefined;

  constructor(options: ListenerOptions) {
    this.#options = options;
  }

  /** Every socket (all states, handshakes included). */
  get size(): number {
    return this.#sessions.size + this.#handshakes.size;
  }

  /** Sockets not welcomed yet (handshaking, waiting for hello, claiming). */
  get unwelcomed(): number {
    return this.#handshakes.size + this.#unwelcomed;
  }

  get(connId: string): Session | undefined {
    return this.#sessions.get(connId);
  }

  sessions(): IterableIterator<Session> {
    return this.#sessions.values();
  }

  address(): AddressInfo {
    const address = this.#server?.address();
    if (address === null || address === undefined || typeof address === "string") {
      throw new TetherError(ErrorCode.Closed, "the edge is not listening");
    }
    return address;
  }

  /** The MQTT port's address; valid after listen. */
  mqttAddress(): AddressInfo {
    return addressOf(this.#mqttServer);
  }

  /** The WebSocket port's address; valid after listen. */
  wsAddress(): AddressInfo {
    return addressOf(this.#wsServer);
  }

  async listen(): Promise<void> {
    const config = this.#options.config;
    if (config.tls !== undefined) {
      const [cert, key] = await Promise.all([readFile(config.tls.certFile), readFile(config.tls.keyFile)]);
      this.#secureContext = createSecureContext({ cert, key, minVersion: "TLSv1.2" });
    }
    this.#upgrades = new WebSocketUpgrades({
      log: this.#options.log,
      maxPayload: config.limits.maxFrameBytes + 1024,
      timeoutMs: config.limits.helloTimeoutMs,
      opened: (stream, mqtt, socket) => this.#upgraded(stream, mqtt, socket),
    });
    this.#server = await this.#listenOn("ndjson", config.devicePort);
    this.#mqttServer = await this.#listenOn("mqtt", config.mqttPort);
    this.#wsServer = await this.#listenOn("ws", config.wsPort);
  }

  async #listenOn(port: PortKind, portNumber: number): Promise<Server> {
    const config = this.#options.config;
    const server = createServer({ noDelay: true }, (socket) => this.#accept(socket, port));
    server.on("error", (error) => this.#options.log.error({ err: error, port }, "device listener error"));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ port: portNumber, host: config.deviceHost, backlog: 4096 }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return server;
  }

  /** Stops accepting; resolves when the listeners are closed (open sockets are not touched). */
  stop(): Promise<void> {
    this.#upgrades?.close();
    const servers = [this.#server, this.#mqttServer, this.#wsServer].filter((server) => server !== undefined);
    return Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())))).then(
      () => undefined,
    );
  }

  /** Tells every open device to go (with the frame `bye` makes) and cuts every other socket. */
  sendAway(bye: () => string): void {
    for (const session of this.#sessions.values()) {
      if (session.isOpen) session.close("draining", bye());
      else session.close("draining", undefined, true);
    }
  }

  /** Destroys every socket left. */
  destroyAll(): void {
    for (const session of this.#sessions.values()) session.socket.destroy();
    for (const handshake of this.#handshakes) handshake.socket.destroy();
  }

  /** Cuts handshakes that outlived the hello timeout (the handshake shares it). */
  sweep(now: number): void {
    const timeout = this.#options.config.limits.helloTimeoutMs;
    for (const handshake of this.#handshakes) {
      if (now - handshake.openedAt < timeout) continue;
      this.#handshakes.delete(handshake);
      this.#options.metrics.close("handshake_timeout");
      handshake.socket.destroy();
    }
  }

  /** The session left the edge for good. */
  forget(session: Session): boolean {
    return this.#sessions.delete(session.connId);
  }

  #refuse(socket: Socket, reason: string, message: string): void {
    this.#options.metrics.error(WireErrorCode.Unavailable);
    this.#options.metrics.close(reason);
    socket.on("error", ignore);
    socket.end(encodeError({ code: WireErrorCode.Unavailable, message, retryable: true }));
    socket.setTimeout(CLOSE_GRACE_MS, () => socket.destroy());
  }

  #accept(socket: Socket, port: PortKind): void {
    const { config } = this.#options;
    if (!this.#options.accepting()) {
      socket.on("error", ignore);
      socket.end(encodeBye(ByeReason.Draining, Math.floor(Math.random() * Math.max(1, config.drainMs))));
      socket.setTimeout(CLOSE_GRACE_MS, () => socket.destroy());
      return;
    }
    if (this.size >= config.limits.maxConnections) {
      this.#refuse(socket, "connection_limit", "edge is at its connection limit");
      return;
    }
    if (this.unwelcomed >= config.limits.maxPendingConnections) {
      this.#refuse(socket, "pending_limit", "edge has too many connections waiting for hello");
      return;
    }
    socket.setNoDelay(true);
    const openedAt = this.#options.now();
    if (config.proxyProtocol === "off" && this.#secureContext === undefined) {
      this.#open(socket, openedAt, socket.remoteAddress ?? "", undefined, port);
      return;
    }
    const handshake: Handshake = { socket, openedAt, port };
    this.#handshakes.add(handshake);
    socket.on("error", (error) => this.#options.log.debug({ err: error }, "device socket error before hello"));
    socket.once("close", () => this.#handshakes.delete(handshake));
    if (config.proxyProtocol === "v2") this.#readProxyHeader(handshake);
    else this.#startTls(handshake, socket.remoteAddress ?? "");
  }

  /** Reads the PROXY v2 header the load balancer writes before the device's first byte. */
  #readProxyHeader(handshake: Handshake): void {
    const socket = handshake.socket;
    takeProxyHeader(socket, true, (taken) => {
      if (!taken.ok) {
        this.#options.metrics.close("bad_proxy_header");
        this.#options.log.debug({ reason: taken.reason }, "connection without a valid PROXY header dropped");
        socket.destroy();
        return;
      }
      const source = taken.source ?? socket.remoteAddress ?? "";
      const rest = taken.rest.length > 0 ? taken.rest : undefined;
      if (this.#secureContext !== undefined) {
        socket.pause();
        if (rest !== undefined) socket.unshift(rest);
        this.#startTls(handshake, source);
      } else if (this.#handshakes.delete(handshake)) {
        this.#open(socket, handshake.openedAt, source, rest, handshake.port);
      }
    });
  }

  #startTls(handshake: Handshake, source: string): void {
    const tlsSocket = new TLSSocket(handshake.socket, { isServer: true, secureContext: this.#secureContext });
    tlsSocket.on("error", (error) => {
      this.#options.log.debug({ err: error }, "TLS handshake failed");
      handshake.socket.destroy();
    });
    tlsSocket.once("secure", () => {
      if (this.#handshakes.delete(handshake))
        this.#open(tlsSocket, handshake.openedAt, source, undefined, handshake.port);
    });
    handshake.socket.resume();
  }

  #open(socket: Socket, openedAt: number, source: string, early: Buffer | undefined, port: PortKind): void {
    if (port === "ws") {
      this.#upgrade(socket, openedAt, source, early);
      return;
    }
    const wire = port === "mqtt" ? this.#mqttWire(false) : undefined;
    this.#openSession(socket, openedAt, source, early, wire, ConnectionProtocol.Ndjson);
  }

  /** The WebSocket port: the HTTP upgrade counts as part of the handshake (swept by the hello timeout). */
  #upgrade(socket: Socket, openedAt: number, source: string, early: Buffer | undefined): void {
    const upgrades = this.#upgrades;
    if (upgrades === undefined || !this.#options.accepting()) {
      socket.destroy();
      return;
    }
    const handshake: Handshake = { socket, openedAt, port: "ws" };
    this.#handshakes.add(handshake);
    this.#upgrading.set(socket, { handshake, source });
    socket.on("error", ignore);
    socket.once("close", () => {
      this.#handshakes.delete(handshake);
      this.#upgrading.delete(socket);
    });
    upgrades.accept(socket, early);
  }

  #upgraded(stream: Duplex, mqtt: boolean, socket: Socket): void {
    const upgrading = this.#upgrading.get(socket);
    this.#upgrading.delete(socket);
    if (upgrading === undefined || !this.#handshakes.delete(upgrading.handshake)) {
      stream.destroy();
      return;
    }
    const wire = mqtt ? this.#mqttWire(true) : undefined;
    this.#openSession(
      stream,
      upgrading.handshake.openedAt,
      upgrading.source,
      undefined,
      wire,
      ConnectionProtocol.NdjsonWs,
    );
  }

  #mqttWire(websocket: boolean): WireFactory {
    const { config, log, events } = this.#options;
    return (session) =>
      new MqttWire({
        session,
        line: (line) => events.line(session, line),
        limits: config.limits,
        log,
        websocket,
      });
  }

  #openSession(
    socket: Duplex,
    openedAt: number,
    source: string,
    early: Buffer | undefined,
    wire: WireFactory | undefined,
    protocol: ConnectionProtocol,
  ): void {
    const { config, metrics, log, now, events } = this.#options;
    if (!this.#options.accepting()) {
      socket.destroy();
      return;
    }
    if ((this.#unwelcomedBySource.get(source) ?? 0) >= config.limits.maxPendingPerSource) {
      if (socket instanceof NetSocket && wire === undefined) {
        this.#refuse(socket, "source_limit", "too many connections waiting for hello from this address");
      } else {
        this.#options.metrics.close("source_limit");
        socket.destroy();
      }
      return;
    }
    this.#unwelcomed += 1;
    this.#unwelcomedBySource.set(source, (this.#unwelcomedBySource.get(source) ?? 0) + 1);
    const connId = `${this.#connPrefix}${(this.#connCounter++).toString(36)}`;
    const session = new Session({
      socket,
      connId,
      source,
      openedAt,
      clock: now,
      limits: config.limits,
      batch: this.#batch,
      metrics,
      log,
      events,
      budget: this,
      protocol,
      ...(wire === undefined ? {} : { wire }),
    });
    this.#sessions.set(connId, session);
    metrics.connections.inc();
    metrics.connectionsOpened.inc();
    (socket as TaggedSocket)[SESSION] = session;
    socket.on("data", onData);
    socket.on("error", this.#onError);
    socket.on("close", onClose);
    if (early !== undefined) session.receive(early);
  }

  readonly #onError = (error: Error): void => {
    this.#options.log.debug({ err: error }, "device socket error");
  };

  /** A session was welcomed or closed before: its place in the pre-hello budgets is free. */
  release(source: string): void {
    this.#unwelcomed -= 1;
    const count = (this.#unwelcomedBySource.get(source) ?? 1) - 1;
    if (count <= 0) this.#unwelcomedBySource.delete(source);
    else this.#unwelcomedBySource.set(source, count);
  }
}

function addressOf(server: Server | undefined): AddressInfo {
  const address = server?.address();
  if (address === null || address === undefined || typeof address === "string") {
    throw new TetherError(ErrorCode.Closed, "the edge is not listening");
  }
  return address;
}
