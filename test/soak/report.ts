/** Formatting of scenario results: one line for test output, a Markdown table for BENCHMARKS.md. */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { ScenarioResult } from "./scenarios.ts";

export const START_MARKER = "<!-- soak:start -->";
export const END_MARKER = "<!-- soak:end -->";

const mib = (kib: number | undefined): string => (kib === undefined ? "-" : `${(kib / 1024).toFixed(0)} MiB`);
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

export function describeResult(result: ScenarioResult): string {
  const s = result.stats;
  const errors = Object.entries(s.errors)
    .map(([code, count]) => `${code}=${count}`)
    .join(",");
  return (
    `${result.name}: ${result.size.devices} devices @ ${result.size.rate} req/s; sent ${s.sent}, acked ${s.acked}, ` +
    `answered ${s.answered} (${s.answeredUnacked} before any ack)${errors === "" ? "" : ` (errors ${errors})`}, lost ${s.lost}, never acked ${s.openUnacked}, ` +
    `retried ${s.retried}, dup ${result.dupAnswers}, pushes ${s.pushesDelivered}/${s.pushesSent} (dup ${result.dupPushes}), ` +
    `reconnects ${s.reconnects}, recovery ${secs(result.recoveryMs)}, p50/p99 ${s.p50}/${s.p99} ms, ` +
    `RSS ${mib(result.rssBeforeKiB)} -> ${mib(result.rssAfterKiB)}, supervisor restarts ${result.restarts}, ` +
    `took ${secs(result.durationMs)}; ${describeRaw(result)}${result.notes.length === 0 ? "" : `; ${result.notes.join(" | ")}`}`
  );
}

/** The raw devices' part of a result line. */
export function describeRaw(result: ScenarioResult): string {
  const r = result.raw;
  const errors = Object.entries(r.errors)
    .map(([code, count]) => `${code}=${count}`)
    .join(",");
  return (
    `raw devices (no resend) ${r.devices}: sent ${r.sent}, acked ${r.acked}, answered ${r.answered} ` +
    `(${r.answeredUnacked} before any ack)${errors === "" ? "" : ` (errors ${errors})`}, ` +
    `lost without resend ${r.lostWithoutResend}` +
    `${r.lostWithoutResend === 0 ? "" : ` (a resend afterwards recovered ${r.recoveredByResend})`}, ` +
    `refused ${r.refused}, never acked ${r.neverAcked}, sends skipped while disconnected ${r.skipped}, ` +
    `reconnects ${r.reconnects}`
  );
}

export function resultTable(rows: ReadonlyArray<{ id: number; result: ScenarioResult; violations: string[] }>): string {
  const lines = [
    "| # | scenario | devices | req/s | sent | acked | answered | lost | raw devices (acked / answered) | lost without resend | dup | pushes sent/delivered | reconnects | recovery | p99 | RSS before/after | result |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
  ];
  for (const { id, result, violations } of rows) {
    const s = result.stats;
    const rss =
      result.rssBeforeKiB === undefined && result.rssAfterKiB === undefined
        ? "-"
        : `${mib(result.rssBeforeKiB)} / ${mib(result.rssAfterKiB)}`;
    lines.push(
      `| ${id} | ${result.name} | ${result.size.devices} | ${result.size.rate} | ${s.sent} | ${s.acked} | ${s.answered} | ` +
        `${s.lost} | ${result.raw.devices} (${result.raw.acked} / ${result.raw.answered}) | ${result.raw.lostWithoutResend} | ${result.dupAnswers} | ${s.pushesSent} / ${s.pushesDelivered} | ${s.reconnects} | ` +
        `${secs(result.recoveryMs)} | ${s.p99} ms | ${rss} | ${violations.length === 0 ? "pass" : `FAIL: ${violations.join("; ")}`} |`,
    );
  }
  return lines.join("\n");
}

/** Replaces the text between the soak markers of BENCHMARKS.md (adding them when missing). */
export function writeSection(file: string, section: string): void {
  const block = `${START_MARKER}\n${section.trim()}\n${END_MARKER}`;
  const text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmarks\n";
  const start = text.indexOf(START_MARKER);
  const end = text.indexOf(END_MARKER);
  const next =
    start !== -1 && end > start
      ? `${text.slice(0, start)}${block}${text.slice(end + END_MARKER.length)}`
      : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, next);
}
