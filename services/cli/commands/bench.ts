/** `tether bench`: many devices, a target rate or as fast as possible, latency percentiles. */

import { build, type Histogram } from "hdr-histogram-js";
import { sleep, withTimeout } from "../../../shared/async/index.ts";
import { isTetherRequestError, TetherClient } from "../../../shared/sdk/index.ts";
import {
  type ConnectionSettings,
  clientOptions,
  connectionOptions,
  connectionSettings,
  flag,
  intOption,
  numberOption,
  parse,
  stringOption,
} from "../args.ts";
import { type CliIo, CommandError, UsageError, writeLine } from "../io.ts";

export const benchUsage = `tether bench --devices N (--rate R | --max) --duration S [options] [connection options]
  N devices send requests for S seconds, either R requests/s in total (open loop) or, with --max,
  as fast as the answers come (--concurrency requests open per device). Prints throughput,
  round-trip latency percentiles (HDR histogram) and errors by code.
    --type T            request type (default echo; echo answers are checked against the body)
    --body-bytes B      body is a string of B bytes (default 16)
    --concurrency C     open requests per device with --max (default 4)
    --warmup S          seconds of load before measuring (default 0)
    --connect-rate R    at most R new connections per second (default: no limit)
    --spread-addresses K  bind device sockets to 127.0.0.2 .. 127.0.0.(K+1) (many connections)
    --json              print one JSON object instead of text
    --quiet             no progress output`;

export interface BenchOptions {
  readonly devices: number;
  /** Requests per second in total; undefined with `max`. */
  readonly rate: number | undefined;
  readonly max: boolean;
  readonly durationSec: number;
  readonly warmupSec: number;
  readonly type: string;
  readonly bodyBytes: number;
  readonly concurrency: number;
  readonly connectRate: number | undefined;
  readonly spreadAddresses: number;
  readonly deviceIdPrefix: string;
}

export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

export interface BenchResult {
  readonly mode: "rate" | "max";
  readonly devices: number;
  readonly targetRate: number | null;
  readonly concurrency: number | null;
  readonly type: string;
  readonly bodyBytes: number;
  readonly durationSec: number;
  readonly elapsedSec: number;
  readonly connect: {
    readonly connected: number;
    readonly failed: number;
    readonly ms: number;
    readonly perSec: number;
  };
  readonly requests: {
    readonly sent: number;
    readonly ok: number;
    readonly errors: number;
    readonly errorsByCode: Readonly<Record<string, number>>;
    readonly unfinished: number;
  };
  /** Successful round trips per second during the measured window. */
  readonly throughput: number;
  /** Round-trip latency in milliseconds. */
  readonly latencyMs: LatencySummary;
  readonly interrupted: boolean;
}

export async function benchCommand(args: readonly string[], io: CliIo): Promise<number> {
  const parsed = parse(args, {
    ...connectionOptions,
    devices: { type: "string" },
    rate: { type: "string" },
    max: { type: "boolean" },
    duration: { type: "string" },
    warmup: { type: "string" },
    type: { type: "string" },
    "body-bytes": { type: "string" },
    concurrency: { type: "string" },
    "connect-rate": { type: "string" },
    "spread-addresses": { type: "string" },
    "device-prefix": { type: "string" },
    json: { type: "boolean" },
    quiet: { type: "boolean" },
  });
  if (parsed.positionals.length > 0)
    throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  if (stringOption(parsed, "devices") === undefined) throw new UsageError("--devices is required");
  if (stringOption(parsed, "duration") === undefined) throw new UsageError("--duration is required");
  const max = flag(parsed, "max");
  const rateRaw = stringOption(parsed, "rate");
  if (max === (rateRaw !== undefined)) throw new UsageError("give exactly one of --rate R and --max");
  const type = stringOption(parsed, "type") ?? "echo";
  if (!/^[A-Za-z0-9._:/-]{1,128}$/.test(type)) throw new UsageError(`--type is not a valid request type: ${type}`);
  const connectRateRaw = stringOption(parsed, "connect-rate");
  const options: BenchOptions = {
    devices: intOption(parsed, "devices", 1, 1, 1_000_000),
    rate: max ? undefined : numberOption(parsed, "rate", 1, 0.001, 10_000_000),
    max,
    durationSec: numberOption(parsed, "duration", 10, 0.1, 86_400),
    warmupSec: numberOption(parsed, "warmup", 0, 0, 86_400),
    type,
    bodyBytes: intOption(parsed, "body-bytes", 16, 0, 16 * 1024 * 1024),
    concurrency: intOption(parsed, "concurrency", 4, 1, 10_000),
    connectRate: connectRateRaw === undefined ? undefined : numberOption(parsed, "connect-rate", 1, 1, 1_000_000),
    spreadAddresses: intOption(parsed, "spread-addresses", 0, 0, 250),
    deviceIdPrefix: stringOption(parsed, "device-prefix") ?? `bench-${Date.now().toString(36)}`,
  };
  const settings = connectionSettings(parsed, io, 10_000);
  const json = flag(parsed, "json");
  const progress = flag(parsed, "quiet") ? undefined : io.stderr;
  const result = await runBench(options, settings, { progress, signal: io.signal });
  if (json) writeLine(io.stdout, JSON.stringify(result));
  else writeLine(io.stdout, formatResult(result));
  if (result.connect.connected === 0) throw new CommandError("no device could connect");
  return result.connect.failed > 0 || result.requests.ok === 0 ? 1 : 0;
}

interface RunDeps {
  /** Where progress goes (a bar on a TTY, a line per second otherwise); none when undefined. */
  readonly progress: (NodeJS.WritableStream & { readonly isTTY?: boolean; readonly columns?: number }) | undefined;
  readonly signal: AbortSignal;
}

interface Counters {
  sent: number;
  ok: number;
  errors: number;
  readonly errorsByCode: Map<string, number>;
  inFlight: number;
}

/** Runs the benchmark. Exported for tests and for scripts that embed it. */
export async function runBench(
  options: BenchOptions,
  settings: ConnectionSettings,
  deps: RunDeps,
): Promise<BenchResult> {
  const body = "x".repeat(options.bodyBytes);
  const checkEcho = options.type === "echo";
  const clients: TetherClient[] = [];
  const connectStarted = performance.now();
  let failedConnects = 0;
  try {
    const attempts: Array<Promise<void>> = [];
    const gapMs = options.connectRate === undefined ? 0 : 1000 / options.connectRate;
    for (let i = 0; i < options.devices && !deps.signal.aborted; i++) {
      const deviceId = `${options.deviceIdPrefix}-${i}`;
      const client = new TetherClient(
        await clientOptions(settings, deviceId, {
          reconnect: { initialMs: 100, maxMs: 2000, jitter: 1 },
          ...(options.spreadAddresses > 0 ? { localAddress: `127.0.0.${2 + (i % options.spreadAddresses)}` } : {}),
        }),
      );
      clients.push(client);
      attempts.push(
        withTimeout(client.connect(), settings.timeoutMs, "connect").then(
          () => {},
          () => {
            failedConnects++;
          },
        ),
      );
      if (gapMs > 0) await sleepUntil(connectStarted + (i + 1) * gapMs);
      else if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(attempts);
    const connectMs = performance.now() - connectStarted;
    const connected = clients.length - failedConnects;
    const live = clients.filter((c) => c.status === "open");

    const histogram = build({ numberOfSignificantValueDigits: 3, lowestDiscernibleValue: 1 });
    const counters: Counters = { sent: 0, ok: 0, errors: 0, errorsByCode: new Map(), inFlight: 0 };
    let measuring = options.warmupSec === 0;
    const issue = (client: TetherClient): Promise<void> => {
      counters.sent++;
      counters.inFlight++;
      const started = performance.now();
      const countThis = measuring;
      return client.request(options.type, body).then(
        (answer) => {
          counters.inFlight--;
          if (!countThis) return;
          if (checkEcho && answer !== body) {
            countError(counters, "mismatch");
            return;
          }
          counters.ok++;
          histogram.recordValue(Math.max(1, Math.round((performance.now() - started) * 1000)));
        },
        (error: unknown) => {
          counters.inFlight--;
          if (!countThis) return;
          countError(counters, isTetherRequestError(error) ? error.code : "exception");
        },
      );
    };

    let stopped = false;
    let interrupted = false;
    const onAbort = (): void => {
      stopped = true;
      interrupted = true;
    };
    deps.signal.addEventListener("abort", onAbort, { once: true });

    if (options.warmupSec > 0 && live.length > 0) {
      await drive(options, live, issue, options.warmupSec * 1000, () => stopped);
      measuring = true;
    }
    const runStarted = performance.now();
    const reporter =
      deps.progress === undefined || live.length === 0
        ? undefined
        : startProgress(deps.progress, options, counters, histogram, runStarted);
    if (live.length > 0) {
      // Counters restart for the measured window: warmup requests are not counted.
      counters.sent = 0;
      await drive(options, live, issue, options.durationSec * 1000, () => stopped);
    }
    const runEnded = performance.now();
    // Answers still on their way count; wait for them up to the request timeout.
    const drainDeadline = Date.now() + settings.timeoutMs + 1000;
    while (counters.inFlight > 0 && Date.now() < drainDeadline && !interrupted) await sleep(5);
    reporter?.stop();
    deps.signal.removeEventListener("abort", onAbort);

    const elapsedSec = (runEnded - runStarted) / 1000;
    return {
      mode: options.max ? "max" : "rate",
      devices: options.devices,
      targetRate: options.rate ?? null,
      concurrency: options.max ? options.concurrency : null,
      type: options.type,
      bodyBytes: options.bodyBytes,
      durationSec: options.durationSec,
      elapsedSec: round(elapsedSec, 3),
      connect: {
        connected,
        failed: failedConnects,
        ms: round(connectMs, 1),
        perSec: connectMs > 0 ? round((connected * 1000) / connectMs, 1) : 0,
      },
      requests: {
        sent: counters.sent,
        ok: counters.ok,
        errors: counters.errors,
        errorsByCode: Object.fromEntries([...counters.errorsByCode.entries()].sort()),
        unfinished: counters.inFlight,
      },
      throughput: elapsedSec > 0 ? round(counters.ok / elapsedSec, 1) : 0,
      latencyMs: summarize(histogram),
      interrupted,
    };
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
  }
}

function countError(counters: Counters, code: string): void {
  counters.errors++;
  counters.errorsByCode.set(code, (counters.errorsByCode.get(code) ?? 0) + 1);
}

/** Issues load for `durationMs`: open loop at a rate, or closed loop with `concurrency` per device. */
async function drive(
  options: BenchOptions,
  clients: readonly TetherClient[],
  issue: (client: TetherClient) => Promise<void>,
  durationMs: number,
  isStopped: () => boolean,
): Promise<void> {
  const started = performance.now();
  const endAt = started + durationMs;
  if (options.max) {
    const loops: Array<Promise<void>> = [];
    for (const client of clients) {
      for (let k = 0; k < options.concurrency; k++) {
        loops.push(
          (async () => {
            while (!isStopped() && performance.now() < endAt) await issue(client);
          })(),
        );
      }
    }
    await Promise.all(loops);
    return;
  }
  const rate = options.rate ?? 1;
  let issued = 0;
  let next = 0;
  while (!isStopped()) {
    const now = performance.now();
    if (now >= endAt) break;
    const due = Math.floor(((now - started) / 1000) * rate);
    while (issued < due) {
      const client = clients[next];
      next = (next + 1) % clients.length;
      issued++;
      if (client !== undefined) void issue(client);
    }
    // About 1 ms granularity: fine enough for latency, light enough for a 2-core machine.
    const nextDueAt = started + ((issued + 1) / rate) * 1000;
    await sleep(Math.max(0, Math.min(nextDueAt, endAt) - performance.now()));
  }
}

function summarize(histogram: Histogram): LatencySummary {
  const ms = (us: number): number => round(us / 1000, 3);
  if (histogram.totalCount === 0) return { count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 };
  return {
    count: histogram.totalCount,
    p50: ms(histogram.getValueAtPercentile(50)),
    p90: ms(histogram.getValueAtPercentile(90)),
    p99: ms(histogram.getValueAtPercentile(99)),
    p999: ms(histogram.getValueAtPercentile(99.9)),
    max: ms(histogram.maxValue),
    mean: ms(histogram.mean),
  };
}

function startProgress(
  stream: NonNullable<RunDeps["progress"]>,
  options: BenchOptions,
  counters: Counters,
  histogram: Histogram,
  startedAt: number,
): { stop(): void } {
  const tty = stream.isTTY === true;
  const totalMs = options.durationSec * 1000;
  let lastOk = 0;
  let lastAt = startedAt;
  const render = (final: boolean): void => {
    const now = performance.now();
    const elapsed = Math.min(now - startedAt, totalMs);
    const window = (now - lastAt) / 1000;
    const rate = window > 0 ? (counters.ok - lastOk) / window : 0;
    lastOk = counters.ok;
    lastAt = now;
    const p99 = histogram.totalCount > 0 ? (histogram.getValueAtPercentile(99) / 1000).toFixed(2) : "-";
    const seconds = `${(elapsed / 1000).toFixed(1)}/${options.durationSec}s`;
    const stats = `${formatInt(Math.round(rate))} req/s  p99 ${p99} ms  errors ${formatInt(counters.errors)}`;
    if (tty) {
      const width = 20;
      const filled = Math.round((elapsed / totalMs) * width);
      const bar = `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${String(Math.round((elapsed / totalMs) * 100)).padStart(3)}%`;
      const text = `${bar} ${seconds}  ${stats}`;
      const columns = stream.columns ?? 120;
      stream.write(
        `\r${text.slice(0, columns - 1).padEnd(Math.min(columns - 1, text.length + 2))}${final ? "\n" : ""}`,
      );
    } else if (!final) {
      stream.write(`bench ${seconds}  ok ${formatInt(counters.ok)}  ${stats}\n`);
    }
  };
  const timer = setInterval(() => render(false), tty ? 250 : 1000);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      if (tty) render(true);
    },
  };
}

/** The human-readable report. */
export function formatResult(result: BenchResult): string {
  const lines: string[] = [];
  const target =
    result.mode === "rate"
      ? `target ${formatInt(result.targetRate ?? 0)} req/s`
      : `max throughput, ${result.concurrency} open per device`;
  lines.push(`tether bench: ${result.devices} devices, ${target}, type ${result.type}, body ${result.bodyBytes} B`);
  lines.push(
    `connect:     ${result.connect.connected} connected, ${result.connect.failed} failed in ${(result.connect.ms / 1000).toFixed(2)} s (${formatInt(Math.round(result.connect.perSec))}/s)`,
  );
  lines.push(
    `requests:    ${formatInt(result.requests.sent)} sent, ${formatInt(result.requests.ok)} ok, ${formatInt(result.requests.errors)} errors in ${result.elapsedSec.toFixed(2)} s${result.interrupted ? " (interrupted)" : ""}`,
  );
  lines.push(`throughput:  ${formatInt(Math.round(result.throughput))} req/s`);
  const l = result.latencyMs;
  lines.push(
    `latency ms:  p50 ${l.p50.toFixed(2)}  p90 ${l.p90.toFixed(2)}  p99 ${l.p99.toFixed(2)}  p99.9 ${l.p999.toFixed(2)}  max ${l.max.toFixed(2)}  mean ${l.mean.toFixed(2)}`,
  );
  const codes = Object.entries(result.requests.errorsByCode);
  lines.push(
    `errors:      ${codes.length === 0 ? "none" : codes.map(([code, n]) => `${code} ${formatInt(n)}`).join(", ")}`,
  );
  if (result.requests.unfinished > 0)
    lines.push(`unfinished:  ${formatInt(result.requests.unfinished)} without an answer`);
  return lines.join("\n");
}

function formatInt(n: number): string {
  return n.toLocaleString("en-US");
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

async function sleepUntil(at: number): Promise<void> {
  const wait = at - performance.now();
  if (wait > 0) await sleep(wait);
}
