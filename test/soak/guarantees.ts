/**
 * The delivery-guarantee suite (test/guarantees/*.int.test.ts: raw devices that never resend,
 * 64 reply slots, several edges, processes killed, frozen and cut off) run as a child of the
 * soak on the soak's cluster, full size unless asked for the short forms. Each guarantee test
 * prints its figures as one `# name: key=value ...` line; those lines are kept for the report.
 */
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { ClusterAddress } from "./scenarios.ts";

export interface GuaranteeRun {
  /** Exit code of the test run (0: every guarantee held). */
  readonly code: number;
  /** The `# name: ...` report lines, in the order they came. */
  readonly reports: readonly string[];
  readonly passed: number;
  readonly failed: number;
  readonly durationMs: number;
}

export interface GuaranteeRunOptions {
  readonly root: string;
  readonly cluster: ClusterAddress;
  /** TETHER_GUARANTEE_FULL=1 (the full forms). */
  readonly full: boolean;
  /** Every line of the run's output. */
  readonly log: (line: string) => void;
  /** Whole-run bound (default 30 min). */
  readonly timeoutMs?: number;
}

/** A guarantee test's report line: `# name: figures`, the name without spaces. */
const REPORT = /^\s*# ([A-Za-z0-9._-]+): (.+)$/;
const COUNT = /^\s*ℹ (pass|fail) (\d+)\s*$/;

/** Report lines (without the leading `# `) among `lines`. */
export function reportLines(lines: readonly string[]): string[] {
  const found: string[] = [];
  for (const line of lines) {
    const match = REPORT.exec(line);
    if (match !== null) found.push(`${match[1]}: ${match[2]}`);
  }
  return found;
}

export function guaranteeFiles(root: string): string[] {
  const dir = join("test", "guarantees");
  return readdirSync(join(root, dir))
    .filter((name) => name.endsWith(".int.test.ts"))
    .sort()
    .map((name) => join(dir, name));
}

export async function runGuarantees(options: GuaranteeRunOptions): Promise<GuaranteeRun> {
  const started = Date.now();
  const files = guaranteeFiles(options.root);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TETHER_KAFKA_BROKERS: options.cluster.kafkaBrokers,
    TETHER_DYNAMODB_ENDPOINT: options.cluster.dynamodbEndpoint,
  };
  if (options.full) env.TETHER_GUARANTEE_FULL = "1";
  else delete env.TETHER_GUARANTEE_FULL;
  const child = spawn(process.execPath, ["--import", "tsx", "--test", "--test-reporter=spec", ...files], {
    cwd: options.root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const counts = { pass: 0, fail: 0 };
  const take = (stream: NodeJS.ReadableStream | null): void => {
    let rest = "";
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        options.log(line);
        const count = COUNT.exec(line);
        if (count !== null) counts[count[1] as "pass" | "fail"] = Number(count[2]);
      }
    });
    stream?.on("end", () => {
      if (rest === "") return;
      lines.push(rest);
      options.log(rest);
    });
  };
  take(child.stdout);
  take(child.stderr);
  const timer = setTimeout(
    () => {
      options.log(`guarantee suite exceeded ${options.timeoutMs ?? 30 * 60_000} ms; stopping it`);
      child.kill("SIGTERM");
    },
    options.timeoutMs ?? 30 * 60_000,
  );
  const code = await new Promise<number>((resolve) => {
    child.once("error", (error) => {
      options.log(`guarantee suite did not start: ${error.message}`);
      resolve(1);
    });
    child.once("close", (exitCode, signal) => resolve(exitCode ?? (signal === null ? 1 : 128)));
  });
  clearTimeout(timer);
  return {
    code,
    reports: reportLines(lines),
    passed: counts.pass,
    failed: counts.fail,
    durationMs: Date.now() - started,
  };
}
