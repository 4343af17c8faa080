/**
 * A raw NDJSON load generator, run as its own process so that its CPU is not the system's.
 * Devices say hello (hmac tokens when BENCH_SECRET is set), then send `echo` requests of a fixed
 * frame size and time req -> ack and req -> res. It never resends.
 *
 *   tsx bench/load.ts '{"port":3000,"devices":100,"mode":"rate","rate":1000,...}'
 *
 * `rate` mode (open loop): `rate` requests per second over all devices, paced every millisecond.
 * `closed` mode: every device keeps `window` requests open and sends the next on each answer.
 * Prints `measuring` when the measured window starts, then one JSON line with the figures.
 */
import { connect, type Socket } from "node:net";
import * as hdr from "hdr-histogram-js";
import { hmacToken } from "../shared/auth/index.ts";

interface LoadOptions {
  readonly port: number;
  readonly devices: number;
  readonly mode: "rate" | "closed";
  readonly rate?: number;
  readonly window?: number;
  readonly warmupSeconds: number;
  readonly seconds: number;
  /** Size of each request frame in bytes, newline included. */
  readonly frameBytes: number;
  readonly devicePrefix?: string;
}

const options = JSON.parse(process.argv[2] ?? "{}") as LoadOptions;
const secret = process.env.BENCH_SECRET;
const NEWLINE = 0x0a;
const RES = Buffer.from('{"t":"res","id":"');
const ACK = Buffer.from('{"t":"ack","id":"');

interface Device {
  readonly socket: Socket;
  /** Send time (ms, performance.now) by request number. */
  readonly sentAt: Map<number, number>;
  next: number;
  rest: Buffer | undefined;
}

function histogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

const roundTrips = histogram();
const acks = histogram();
let measuring = false;
let completed = 0;
let sent = 0;
let errors = 0;

/** A request frame of exactly `frameBytes` bytes: the body's padding makes up the difference. */
function frame(id: number): string {
  const head = `{"t":"req","id":"${id}","type":"echo","body":{"pad":"`;
  const tail = `"}}\n`;
  const pad = Math.max(0, options.frameBytes - head.length - tail.length);
  return `${head}${"x".repeat(pad)}${tail}`;
}

/** The request number in `{"t":"res","id":"<n>"...` at `start`, or -1. */
function idAt(line: Buffer, start: number, end: number): number {
  let value = 0;
  let index = start;
  for (; index < end; index++) {
    const byte = line[index]!;
    if (byte === 0x22) break;
    if (byte < 0x30 || byte > 0x39) return -1;
    value = value * 10 + (byte - 0x30);
  }
  return index === start ? -1 : value;
}

function startsWith(chunk: Buffer, at: number, end: number, prefix: Buffer): boolean {
  if (end - at < prefix.length) return false;
  return chunk.compare(prefix, 0, prefix.length, at, at + prefix.length) === 0;
}

function send(device: Device): void {
  const id = device.next++;
  device.sentAt.set(id, performance.now());
  device.socket.write(frame(id));
  if (measuring) sent += 1;
}

function onLine(device: Device, chunk: Buffer, start: number, end: number): void {
  if (startsWith(chunk, start, end, RES)) {
    const id = idAt(chunk, start + RES.length, end);
    const at = device.sentAt.get(id);
    if (at === undefined) return;
    device.sentAt.delete(id);
    if (measuring) {
      completed += 1;
      roundTrips.recordValue(Math.max(1, Math.round((performance.now() - at) * 1000)));
    }
    if (options.mode === "closed") send(device);
  } else if (startsWith(chunk, start, end, ACK)) {
    if (!measuring) return;
    const at = device.sentAt.get(idAt(chunk, start + ACK.length, end));
    if (at !== undefined) acks.recordValue(Math.max(1, Math.round((performance.now() - at) * 1000)));
  } else if (chunk.indexOf('"t":"error"', start) !== -1 && chunk.indexOf('"t":"error"', start) < end) {
    errors += 1;
  }
}

function onData(device: Device, data: Buffer): void {
  const chunk = device.rest === undefined ? data : Buffer.concat([device.rest, data]);
  let start = 0;
  for (let end = chunk.indexOf(NEWLINE); end !== -1; end = chunk.indexOf(NEWLINE, start)) {
    onLine(device, chunk, start, end);
    start = end + 1;
  }
  device.rest = start < chunk.length ? chunk.subarray(start) : undefined;
}

function hello(index: number): Promise<Device> {
  const deviceId = `${options.devicePrefix ?? "load"}-${index}`;
  const token = secret === undefined ? "" : `,"token":"${hmacToken(secret, deviceId)}"`;
  return new Promise((resolve, reject) => {
    const socket = connect({ port: options.port, host: "127.0.0.1", noDelay: true });
    const device: Device = { socket, sentAt: new Map(), next: 0, rest: undefined };
    socket.once("error", reject);
    socket.once("connect", () => socket.write(`{"t":"hello","v":1,"deviceId":"${deviceId}"${token}}\n`));
    const onWelcome = (data: Buffer): void => {
      const text = data.toString("utf8");
      if (!text.includes('"welcome"')) {
        reject(new Error(`no welcome for ${deviceId}: ${text.slice(0, 200)}`));
        return;
      }
      socket.off("data", onWelcome);
      socket.on("data", (more: Buffer) => onData(device, more));
      resolve(device);
    };
    socket.on("data", onWelcome);
  });
}

async function main(): Promise<void> {
  const devices: Device[] = [];
  for (let i = 0; i < options.devices; i++) devices.push(await hello(i));
  let pacer: NodeJS.Timeout | undefined;
  if (options.mode === "closed") {
    for (const device of devices) for (let i = 0; i < (options.window ?? 1); i++) send(device);
  } else {
    // Open loop, paced on the clock: requests owed since the start go out every millisecond.
    const perMs = (options.rate ?? 1000) / 1000;
    const started = performance.now();
    let issued = 0;
    let turn = 0;
    pacer = setInterval(() => {
      const owed = Math.floor((performance.now() - started) * perMs);
      for (; issued < owed; issued++) send(devices[turn++ % devices.length]!);
    }, 1);
  }
  await new Promise((resolve) => setTimeout(resolve, options.warmupSeconds * 1000));
  measuring = true;
  process.stdout.write("measuring\n");
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, options.seconds * 1000));
  measuring = false;
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  if (pacer !== undefined) clearInterval(pacer);
  const ms = (h: hdr.Histogram, p: number): number => Number((h.getValueAtPercentile(p) / 1000).toFixed(2));
  process.stdout.write(
    `${JSON.stringify({
      mode: options.mode,
      devices: options.devices,
      window: options.window,
      rate: options.rate,
      sent,
      completed,
      errors,
      roundTripsPerSec: Math.round(completed / elapsed),
      p50ms: ms(roundTrips, 50),
      p99ms: ms(roundTrips, 99),
      maxMs: ms(roundTrips, 100),
      ackP50ms: ms(acks, 50),
      ackP99ms: ms(acks, 99),
      loadCpuCores: Number(((cpu.user + cpu.system) / 1e6 / elapsed).toFixed(2)),
    })}\n`,
  );
  for (const device of devices) device.socket.destroy();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exit(1);
  },
);
