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
import { connectFirst } from "../connecting.ts";
import { type CliIo, CommandError, INTERRUPTED_EXIT_CODE, Interrupted, UsageError, writeLine } from "../io.ts";

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
  readonly min: number;
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
  if (result.interrupted) return INTERRUPTED_EXIT_CODE;
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
  const connects = { connected: 0, failed: 0 };
  let interrupted = deps.signal.aborted;
  const onAbort = (): void => {
    interrupted = true;
  };
  deps.signal.addEventListener("abort", onAbort, { once: true });
  const aborted = new Promise<void>((resolve) => {
    if (deps.signal.aborted) resolve();
    else deps.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  try {
    const newClient = async (i: number): Promise<TetherClient> => {
      const client = new TetherClient(
        await clientOptions(settings, `${options.deviceIdPrefix}-${i}`, {
          reconnect: { initialMs: 100, maxMs: 2000, jitter: 1 },
          ...(options.spreadAddresses > 0 ? { localAddress: `127.0.0.${2 + (i % options.spreadAddresses)}` } : {}),
        }),
      );
      clients.push(client);
      return client;
    };
    // One device first, alone: an edge that is not there (wrong port, wrong secret) fails the run
    // at once, instead of every device waiting out its connect timeout to report zeros.
    try {
      await connectFirst(await newClient(0), settings, deps.signal);
      connects.connected++;
    } catch (error) {
      if (!(error instanceof Interrupted)) throw error;
    }
    const connecting =
      deps.progress === undefined || options.devices === 1 || interrupted
        ? undefined
        : startConnectProgress(deps.progress, options.devices, connects);
    const attempts: Array<Promise<void>> = [];
    const gapMs = options.connectRate === undefined ? 0 : 1000 / options.connectRate;
    for (let i = 1; i < options.devices && !interrupted; i++) {
      const client = await newClient(i);
      attempts.push(
        withTimeout(client.connect(), settings.timeoutMs, "connect").then(
          () => {
            connects.connected++;
          },
          () => {
            connects.failed++;
          },
        ),
      );
      if (gapMs > 0) await sleepUntil(connectStarted + i * gapMs, deps.signal);
      else if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
    }
    // Ctrl-C stops the wait too: devices still connecting then count as neither.
    await Promise.race([Promise.all(attempts), aborted]);
    connecting?.stop();
    const connectMs = performance.now() - connectStarted;
    const { connected, failed: failedConnects } = connects;
    const live = interrupted ? [] : clients.filter((c) => c.status === "open");

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

    const stopped = (): boolean => interrupted;
    if (options.warmupSec > 0 && live.length > 0) {
      await drive(options, live, issue, options.warmupSec * 1000, stopped, deps.signal);
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
      await drive(options, live, issue, options.durationSec * 1000, stopped, deps.signal);
    }
    const runEnded = performance.now();
    // Answers still on their way count; wait for them up to the request timeout.
    const drainDeadline = Date.now() + settings.timeoutMs + 1000;
    while (counters.inFlight > 0 && Date.now() < drainDeadline && !interrupted) await sleep(5);
    reporter?.stop();

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
    deps.signal.removeEventListener("abort", onAbort);
    await Promise.allSettled(clients.map((c) => c.close()));
  }
}

function countError(counters: Counters, code: string): void {
  counters.errors++;
  counters.errorsByCode.set(code, (counters.errorsByCode.get(code) ?? 0) + 1);
}

/**
 * Issues load for `durationMs`: closed loop with `concurrency` open per device, or open loop at
 * a rate. At a rate, request k is due k/rate seconds into the window (the first at once), so the
 * window sends exactly every request due within it: rate x duration of them, rounded up.
 */
async function drive(
  options: BenchOptions,
  clients: readonly TetherClient[],
  issue: (client: TetherClient) => Promise<void>,
  durationMs: number,
  isStopped: () => boolean,
  signal: AbortSignal,
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
  const total = requestsDue(rate, durationMs / 1000);
  let issued = 0;
  let next = 0;
  while (issued < total && !isStopped()) {
    const elapsedSec = (performance.now() - started) / 1000;
    const due = Math.min(total, Math.floor(elapsedSec * rate) + 1);
    while (issued < due) {
      const client = clients[next];
      next = (next + 1) % clients.length;
      issued++;
      if (client !== undefined) void issue(client);
    }
    if (issued >= total) break;
    // About 1 ms granularity: fine enough for latency, light enough for a 2-core machine.
    await sleepUntil(started + (issued / rate) * 1000, signal);
  }
  // The window is the whole duration, though its last request went out up to 1/rate before the end.
  if (!isStopped()) await sleepUntil(endAt, signal);
}

/** Requests due within a window of `durationSec` at `rate` per second, one at its start. */
export function requestsDue(rate: number, durationSec: number): number {
  // The epsilon keeps 0.1 x 30 (3.0000000000000004 in floating point) at 3.
  return Math.max(1, Math.ceil(rate * durationSec - 1e-9));
}

/**
 * Latency figures in milliseconds from a histogram of microseconds. A percentile is the top of
 * its bucket (3 significant digits), which can lie past the largest value recorded; every figure
 * is clamped to the recorded min and max, which are exact.
 */
export function summarize(histogram: Histogram): LatencySummary {
  if (histogram.totalCount === 0) return { count: 0, min: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 };
  const low = histogram.minNonZeroValue;
  const high = histogram.maxValue;
  const ms = (us: number): number => round(Math.min(high, Math.max(low, us)) / 1000, 3);
  return {
    count: histogram.totalCount,
    min: ms(low),
    p50: ms(histogram.getValueAtPercentile(50)),
    p90: ms(histogram.getValueAtPercentile(90)),
    p99: ms(histogram.getValueAtPercentile(99)),
    p999: ms(histogram.getValueAtPercentile(99.9)),
    max: ms(high),
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
    const p99 = histogram.totalCount > 0 ? summarize(histogram).p99.toFixed(2) : "-";
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
    } else if (!final || lines === 0) {
      lines++;
      stream.write(`bench ${seconds}  ok ${formatInt(counters.ok)}  ${stats}\n`);
    }
  };
  // Lines written without a terminal; a run shorter than a tick still gets one, at its end.
  let lines = 0;
  const timer = setInterval(() => render(false), tty ? 250 : 1000);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      render(true);
    },
  };
}

/** While devices connect: how many have, of how many, once a second (a bar on a terminal). */
function startConnectProgress(
  stream: NonNullable<RunDeps["progress"]>,
  total: number,
  counts: { readonly connected: number; readonly failed: number },
): { stop(): void } {
  const tty = stream.isTTY === true;
  // Connecting that is over before the first tick leaves no trace.
  let shown = false;
  const render = (final: boolean): void => {
    shown = true;
    const done = counts.connected + counts.failed;
    const text = `connecting ${formatInt(counts.connected)}/${formatInt(total)} devices, ${formatInt(counts.failed)} failed`;
    if (tty) {
      const width = 20;
      const filled = Math.round((done / total) * width);
      const bar = `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${String(Math.round((done / total) * 100)).padStart(3)}%`;
      const line = `${bar} ${text}`;
      const columns = stream.columns ?? 120;
      stream.write(
        `\r${line.slice(0, columns - 1).padEnd(Math.min(columns - 1, line.length + 2))}${final ? "\n" : ""}`,
      );
    } else if (!final) {
      stream.write(`bench ${text}\n`);
    }
  };
  const timer = setInterval(() => render(false), tty ? 250 : 1000);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      if (tty && shown) render(true);
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
    `latency ms:  min ${l.min.toFixed(2)}  p50 ${l.p50.toFixed(2)}  p90 ${l.p90.toFixed(2)}  p99 ${l.p99.toFixed(2)}  p99.9 ${l.p999.toFixed(2)}  max ${l.max.toFixed(2)}  mean ${l.mean.toFixed(2)}`,
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

async function sleepUntil(at: number, signal: AbortSignal): Promise<void> {
  const wait = at - performance.now();
  if (wait > 0) await sleep(wait, { signal });
}
