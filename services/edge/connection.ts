import type { Socket } from "node:net";
import type { LineSplitter } from "../../shared/protocol/index.ts";

/** Where a connection is in its life. Numbers so that "closing or later" is one comparison. */
export const ConnState = {
  /** Accepted; waiting for `hello`. */
  Hello: 0,
  /** `hello` read; token check and ownership claim under way. */
  Auth: 1,
  /** `welcome` sent; requests and replies flow. */
  Open: 2,
  /** Closed by the edge or the device; the socket may still be flushing. */
  Closing: 3,
} as const;
export type ConnState = (typeof ConnState)[keyof typeof ConnState];

/** Why reading a socket is paused; bits, since both may hold at once. */
export const Paused = { Inflight: 1, Producer: 2, Hello: 4 } as const;

/**
 * The state of one device connection. Kept deliberately small (an edge holds tens of
 * thousands of idle ones): no timers (one sweep timer serves all), sets created only when
 * used, open requests counted here and keyed edge-wide.
 */
export class Connection {
  readonly socket: Socket;
  readonly connId: string;
  readonly openedAt: number;
  /** The device's address (from the PROXY header behind a load balancer), for per-source limits. */
  readonly source: string;
  /** True until welcome or close: the connection counts against the pre-auth budgets. */
  preAuth = true;
  splitter!: LineSplitter;
  state: ConnState = ConnState.Hello;
  deviceId: string | null = null;
  /** The ownership epoch this connection claimed; 0 before the claim. */
  epoch = 0;
  lastSeen: number;
  closingAt = 0;
  /** bad_frame lines in a row. */
  badFrames = 0;
  /** Requests sent and not yet answered (nor failed). */
  open = 0;
  /** Rate limit token bucket. */
  tokens: number;
  tokensAt: number;
  paused = 0;
  corked = false;
  /** Pushes written and not yet acked by the device (message ids). */
  unacked: Set<string> | null = null;
  /** Lines that came right behind `hello`, held until `welcome` is out (pipelining clients). */
  early: Buffer[] | null = null;

  constructor(socket: Socket, connId: string, openedAt: number, now: number, tokens: number, source: string) {
    this.socket = socket;
    this.connId = connId;
    this.openedAt = openedAt;
    this.source = source;
    this.lastSeen = now;
    this.tokens = tokens;
    this.tokensAt = now;
  }
}
