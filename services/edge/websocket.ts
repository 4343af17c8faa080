import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { Duplex } from "node:stream";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import type { Logger } from "../../shared/log/index.ts";

/** The subprotocol a WebSocket client names to speak MQTT on the WebSocket port. */
export const MQTT_SUBPROTOCOL = "mqtt";

const NEWLINE = 10;

function asBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/**
 * A WebSocket as the byte stream a session reads and writes. NDJSON: every text message is one
 * frame (its newline added when missing) and every line written goes out as one text message.
 * MQTT: binary messages carry the packet stream, whatever their boundaries.
 */
export class WebSocketStream extends Duplex {
  readonly #ws: WebSocket;
  readonly #lines: boolean;

  constructor(ws: WebSocket, lines: boolean) {
    super({ allowHalfOpen: false });
    this.#ws = ws;
    this.#lines = lines;
    ws.on("message", (data: RawData, isBinary: boolean) => {
      let chunk = asBuffer(data);
      if (!lines && !isBinary) {
        // MQTT over WebSocket is binary only.
        ws.close(1003, "MQTT packets are sent as binary messages");
        return;
      }
      if (lines && chunk.at(-1) !== NEWLINE) chunk = Buffer.concat([chunk, Buffer.from("\n")]);
      if (!this.push(chunk)) ws.pause();
    });
    ws.on("close", () => {
      this.push(null);
      this.destroy();
    });
    ws.on("error", (error: Error) => this.destroy(error));
  }

  /** The subprotocol the client and the edge agreed on ("" for NDJSON). */
  get subprotocol(): string {
    return this.#ws.protocol;
  }

  override _read(): void {
    this.#ws.resume();
  }

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.#send(typeof chunk === "string" ? Buffer.from(chunk) : chunk, done);
  }

  override _writev(
    chunks: Array<{ chunk: Buffer | string; encoding: BufferEncoding }>,
    done: (error?: Error | null) => void,
  ): void {
    const buffers = chunks.map(({ chunk }) => (typeof chunk === "string" ? Buffer.from(chunk) : chunk));
    this.#send(buffers.length === 1 && buffers[0] !== undefined ? buffers[0] : Buffer.concat(buffers), done);
  }

  #send(data: Buffer, done: (error?: Error | null) => void): void {
    const ws = this.#ws;
    if (ws.readyState !== WebSocket.OPEN) {
      done(new Error("WebSocket closed"));
      return;
    }
    if (!this.#lines) {
      ws.send(data, { binary: true }, (error) => done(error ?? null));
      return;
    }
    const messages: Buffer[] = [];
    let start = 0;
    for (let index = data.indexOf(NEWLINE); index !== -1; index = data.indexOf(NEWLINE, start)) {
      if (index > start) messages.push(data.subarray(start, index));
      start = index + 1;
    }
    if (start < data.length) messages.push(data.subarray(start));
    if (messages.length === 0) {
      done(null);
      return;
    }
    const last = messages.length - 1;
    for (let index = 0; index < last; index++) ws.send(messages[index] as Buffer, { binary: false });
    ws.send(messages[last] as Buffer, { binary: false }, (error) => done(error ?? null));
  }

  override _final(done: (error?: Error | null) => void): void {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(1000);
    done(null);
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    if (this.#ws.readyState !== WebSocket.CLOSED) this.#ws.terminate();
    done(error);
  }
}

export interface WebSocketUpgradesOptions {
  readonly log: Logger;
  /** Largest message taken (a frame or an MQTT packet, with room for its header). */
  readonly maxPayload: number;
  /** Bound for the HTTP upgrade request, as for a hello. */
  readonly timeoutMs: number;
  /** A WebSocket is open: NDJSON when `mqtt` is false. */
  readonly opened: (stream: WebSocketStream, mqtt: boolean, socket: Socket) => void;
}

/**
 * The HTTP upgrade of the WebSocket port, built on `ws`: sockets come from the device listener
 * (after its PROXY header and TLS handshake), are upgraded, and become streams for sessions.
 * Anything but an upgrade gets 426.
 */
export class WebSocketUpgrades {
  readonly #http: Server;
  readonly #wss: WebSocketServer;

  constructor(options: WebSocketUpgradesOptions) {
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: options.maxPayload,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(MQTT_SUBPROTOCOL) ? MQTT_SUBPROTOCOL : false),
    });
    this.#http = createServer({ requestTimeout: options.timeoutMs, headersTimeout: options.timeoutMs });
    this.#http.on("request", (_request: IncomingMessage, response: ServerResponse) => {
      response.writeHead(426, { "content-type": "text/plain", connection: "close", upgrade: "websocket" });
      response.end("this port speaks WebSocket (NDJSON text messages, or MQTT with subprotocol mqtt)\n");
    });
    this.#http.on("upgrade", (request: IncomingMessage, socket: Socket, head: Buffer) => {
      this.#wss.handleUpgrade(request, socket, head, (ws) => {
        options.opened(
          new WebSocketStream(ws, ws.protocol !== MQTT_SUBPROTOCOL),
          ws.protocol === MQTT_SUBPROTOCOL,
          socket,
        );
      });
    });
    this.#http.on("clientError", (error: Error, socket: Socket) => {
      options.log.debug({ err: error }, "bad WebSocket upgrade request");
      socket.destroy();
    });
  }

  /** Serves a socket of the WebSocket port (bytes already read from it come back first). */
  accept(socket: Socket, early: Buffer | undefined): void {
    if (early !== undefined) socket.unshift(early);
    this.#http.emit("connection", socket);
  }

  close(): void {
    this.#wss.close();
    this.#http.close();
  }
}
