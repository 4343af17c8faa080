/** The scenarios, their sizes for CI (short) and for `npm run soak` (full), and their rules. */
import {
  abuse,
  dynamoOutage,
  kafkaOutage,
  killEdge,
  killWorker,
  reconnectStorm,
  rollingRestart,
  type ScenarioContext,
  type ScenarioResult,
  type ScenarioSize,
  slowReaders,
} from "./scenarios.ts";

export interface ScenarioSpec {
  readonly id: number;
  readonly title: string;
  readonly run: (ctx: ScenarioContext, size: ScenarioSize) => Promise<ScenarioResult>;
  readonly short: ScenarioSize;
  readonly full: ScenarioSize;
  /** Needs the private cluster whose nodes can be stopped. */
  readonly controllable: boolean;
  /**
   * Done-when: zero acked requests lost (always: by the SDK devices, and by the raw devices that
   * never resend) and zero pushes lost (when set).
   */
  readonly noPushLoss: boolean;
}

const base = { pushRate: 0, warmupMs: 3000, afterMs: 8000, graceMs: 45_000, extra: 0 };

export const scenarios: readonly ScenarioSpec[] = [
  {
    id: 1,
    title: "kill -9 one edge at steady load",
    run: killEdge,
    short: { ...base, devices: 60, rate: 120, pushRate: 10 },
    full: { ...base, devices: 1000, rate: 2000, pushRate: 50, warmupMs: 10_000, afterMs: 30_000, graceMs: 90_000 },
    controllable: false,
    noPushLoss: true,
  },
  {
    id: 2,
    title: "kill -9 one worker at steady load",
    run: killWorker,
    short: { ...base, devices: 60, rate: 120, pushRate: 10, afterMs: 10_000 },
    full: { ...base, devices: 1000, rate: 2000, pushRate: 50, warmupMs: 10_000, afterMs: 30_000, graceMs: 90_000 },
    controllable: false,
    noPushLoss: true,
  },
  {
    id: 3,
    title: "Kafka broker stopped for 10 s, then restarted",
    run: kafkaOutage,
    short: { ...base, devices: 40, rate: 60, afterMs: 6000, extra: 10_000 },
    full: { ...base, devices: 1000, rate: 1000, warmupMs: 10_000, afterMs: 20_000, graceMs: 90_000, extra: 10_000 },
    controllable: true,
    noPushLoss: false,
  },
  {
    id: 4,
    title: "DynamoDB Local stopped for 10 s, then restarted",
    run: dynamoOutage,
    short: { ...base, devices: 40, rate: 60, afterMs: 8000, extra: 10_000 },
    full: { ...base, devices: 1000, rate: 1000, warmupMs: 10_000, afterMs: 20_000, graceMs: 90_000, extra: 10_000 },
    controllable: true,
    noPushLoss: false,
  },
  {
    id: 5,
    title: "rolling restart (SIGTERM, one by one) of every edge",
    run: rollingRestart,
    short: { ...base, devices: 150, rate: 100, pushRate: 10, afterMs: 2000 },
    full: { ...base, devices: 2000, rate: 500, pushRate: 50, warmupMs: 10_000, afterMs: 10_000, graceMs: 90_000 },
    controllable: false,
    noPushLoss: true,
  },
  {
    id: 6,
    title: "reconnect storm after an edge dies",
    run: reconnectStorm,
    short: { ...base, devices: 400, rate: 50, afterMs: 3000 },
    full: { ...base, devices: 5000, rate: 200, warmupMs: 10_000, afterMs: 10_000, graceMs: 90_000 },
    controllable: false,
    noPushLoss: false,
  },
  {
    id: 7,
    title: "slow readers next to normal devices",
    run: slowReaders,
    short: { ...base, devices: 50, rate: 100, pushRate: 10, warmupMs: 4000, afterMs: 6000, extra: 5 },
    full: {
      ...base,
      devices: 1000,
      rate: 1000,
      pushRate: 50,
      warmupMs: 10_000,
      afterMs: 20_000,
      graceMs: 90_000,
      extra: 50,
    },
    controllable: false,
    noPushLoss: true,
  },
  {
    id: 8,
    title: "abuse: failed auths, slowloris, frames at the limit, random bytes",
    run: abuse,
    short: { ...base, devices: 50, rate: 100, warmupMs: 6000, afterMs: 8000, extra: 1000 },
    full: { ...base, devices: 1000, rate: 1000, warmupMs: 15_000, afterMs: 30_000, graceMs: 90_000, extra: 10_000 },
    controllable: false,
    noPushLoss: false,
  },
];

/** What breaks the scenario's done-when rules (empty when it passed). */
export function violations(spec: ScenarioSpec, result: ScenarioResult): string[] {
  const out: string[] = [];
  const s = result.stats;
  if (s.sent === 0 || s.answeredOk === 0) out.push("no load went through");
  if (s.lost > 0) out.push(`${s.lost} acked requests lost`);
  const raw = result.raw;
  if (raw.sent === 0 || raw.answered === 0) out.push("no raw-device load went through");
  if (raw.lostWithoutResend > 0) out.push(`${raw.lostWithoutResend} acked requests lost without resend (raw devices)`);
  if (raw.wrong > 0) out.push(`${raw.wrong} raw-device answers with a wrong body`);
  if (s.wrong > 0) out.push(`${s.wrong} answers with a wrong body`);
  if (spec.noPushLoss && s.pushesLost > 0) out.push(`${s.pushesLost} pushes lost`);
  if (s.answered < s.sent) out.push(`${s.sent - s.answered} requests never answered (${s.openUnacked} never acked)`);
  if (spec.id === 6 && s.reconnects < result.size.devices) {
    out.push(`only ${s.reconnects} of ${result.size.devices} devices reconnected`);
  }
  if (spec.id === 7) {
    const f = result.figures;
    if ((f.slowReaders ?? 0) === 0) out.push("no slow reader got connected");
    if ((f.cutMetric ?? 0) < (f.slowReaders ?? 0)) out.push(`only ${f.cutMetric} of ${f.slowReaders} slow readers cut`);
  }
  if (spec.id === 8) {
    const f = result.figures;
    const bound = Math.max(2 * (f.p99Base ?? 0), (f.p99Base ?? 0) + 100);
    if (!((f.p99Abuse ?? Number.POSITIVE_INFINITY) <= bound)) {
      out.push(`p99 under abuse ${f.p99Abuse} ms above 2x baseline ${f.p99Base} ms`);
    }
    if ((f.unauthorized ?? 0) < (f.failedAuths ?? 0)) out.push("a failed auth did not get `unauthorized`");
  }
  if (spec.id === 7 || spec.id === 8) {
    const before = result.rssBeforeKiB ?? 0;
    const after = result.rssAfterKiB ?? Number.POSITIVE_INFINITY;
    if (after - before > 128 * 1024) out.push(`edge RSS grew from ${before} KiB to ${after} KiB`);
  }
  return out;
}
