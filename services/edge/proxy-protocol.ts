/**
 * PROXY protocol version 2 (the binary header a load balancer such as an AWS NLB puts in front of
 * a connection's bytes), so the edge knows the device's own address for its per-source limits.
 * Only the address block is read; TLVs are skipped.
 */
import type { Socket } from "node:net";

const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const FIXED_LENGTH = 16;
/** Longest header accepted: the address block plus room for the TLVs load balancers add. */
export const MAX_PROXY_HEADER_BYTES = 1024;

const COMMAND_LOCAL = 0x0;
const COMMAND_PROXY = 0x1;
const FAMILY_INET = 0x1;
const FAMILY_INET6 = 0x2;

export type ProxyHeader =
  /** More bytes are needed. */
  | { readonly state: "partial" }
  | { readonly state: "invalid"; readonly reason: string }
  | {
      readonly state: "ok";
      /** Header length in bytes; the connection's own data starts there. */
      readonly length: number;
      /** The original client; undefined for a LOCAL header (the balancer's own health check). */
      readonly source: { readonly address: string; readonly port: number } | undefined;
    };

function ipv6(bytes: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(bytes.readUInt16BE(at + i * 2).toString(16));
  const text = groups.join(":");
  // An IPv4-mapped address reads as the IPv4 one, so per-source limits count it once.
  const mapped = /^0:0:0:0:0:ffff:([0-9a-f]+):([0-9a-f]+)$/.exec(text);
  if (mapped !== null) {
    const high = Number.parseInt(mapped[1] as string, 16);
    const low = Number.parseInt(mapped[2] as string, 16);
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  return text;
}

/** Reads a PROXY v2 header at the start of `data` (the first bytes of a connection). */
export function parseProxyHeader(data: Buffer): ProxyHeader {
  const signatureBytes = Math.min(data.length, SIGNATURE.length);
  if (data.compare(SIGNATURE, 0, signatureBytes, 0, signatureBytes) !== 0) {
    return { state: "invalid", reason: "no PROXY v2 signature" };
  }
  if (data.length < FIXED_LENGTH) return { state: "partial" };
  const versionCommand = data[12] as number;
  if (versionCommand >> 4 !== 2) return { state: "invalid", reason: "not PROXY protocol version 2" };
  const command = versionCommand & 0x0f;
  if (command !== COMMAND_LOCAL && command !== COMMAND_PROXY) return { state: "invalid", reason: "unknown command" };
  const length = FIXED_LENGTH + data.readUInt16BE(14);
  if (length > MAX_PROXY_HEADER_BYTES) return { state: "invalid", reason: "header too long" };
  if (data.length < length) return { state: "partial" };
  if (command === COMMAND_LOCAL) return { state: "ok", length, source: undefined };
  const family = (data[13] as number) >> 4;
  if (family === FAMILY_INET && length >= FIXED_LENGTH + 12) {
    const address = `${data[16]}.${data[17]}.${data[18]}.${data[19]}`;
    return { state: "ok", length, source: { address, port: data.readUInt16BE(24) } };
  }
  if (family === FAMILY_INET6 && length >= FIXED_LENGTH + 36) {
    return { state: "ok", length, source: { address: ipv6(data, 16), port: data.readUInt16BE(48) } };
  }
  // UNSPEC or a UNIX socket: no address to count by.
  return { state: "ok", length, source: undefined };
}

/** Builds a PROXY v2 header for an IPv4 TCP connection (for tests and benchmarks). */
export function proxyHeaderV4(
  source: string,
  sourcePort: number,
  destination = "10.0.0.1",
  destinationPort = 3000,
): Buffer {
  const header = Buffer.alloc(FIXED_LENGTH + 12);
  SIGNATURE.copy(header, 0);
  header[12] = 0x20 | COMMAND_PROXY;
  header[13] = (FAMILY_INET << 4) | 0x1;
  header.writeUInt16BE(12, 14);
  Buffer.from(source.split(".").map(Number)).copy(header, 16);
  Buffer.from(destination.split(".").map(Number)).copy(header, 20);
  header.writeUInt16BE(sourcePort, 24);
  header.writeUInt16BE(destinationPort, 26);
  return header;
}

/** What {@link takeProxyHeader} read off a socket. */
export type TakenHeader =
  | { readonly ok: true; readonly source: string | undefined; readonly rest: Buffer }
  | { readonly ok: false; readonly reason: string };

/**
 * Reads the PROXY v2 header off the start of a socket and hands over the bytes behind it. With
 * `required: false`, a connection that starts without the signature (a local probe) passes with
 * no source. Calls `done` once; the caller owns the socket's errors and timeouts.
 */
export function takeProxyHeader(socket: Socket, required: boolean, done: (taken: TakenHeader) => void): void {
  let held: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    const header = parseProxyHeader(held);
    if (header.state === "partial") return;
    socket.off("data", onData);
    if (header.state === "ok") done({ ok: true, source: header.source?.address, rest: held.subarray(header.length) });
    else if (!required) done({ ok: true, source: undefined, rest: held });
    else done({ ok: false, reason: header.reason });
  };
  socket.on("data", onData);
}
