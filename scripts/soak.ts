/**
 * `npm run soak`: the fault-and-load scenarios at full size on a local cluster (Kafka 4 KRaft and
 * DynamoDB Local, plus a private pair for the broker and database outages), edges and workers as
 * separate processes. Prints each scenario's counts, writes the table into BENCHMARKS.md between
 * the soak markers, and exits 1 when a scenario breaks its rules.
 *
 *   npm run soak                 every scenario, full size
 *   npm run soak -- 1 5          scenarios 1 and 5
 *   npm run soak -- --short      the CI sizes (no BENCHMARKS.md update)
 */
import { execFileSync } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { type LocalCluster, startLocalCluster } from "../test/harness/index.ts";
import { type ControllableCluster, startControllableCluster } from "../test/soak/kafka-control.ts";
import { describeResult, resultTable, writeSection } from "../test/soak/report.ts";
import type { ScenarioResult } from "../test/soak/scenarios.ts";
import { scenarios, violations } from "../test/soak/sizes.ts";

const root = resolve(import.meta.dirname, "..");

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const short = args.includes("--short");
  const ids = args.filter((arg) => /^\d+$/.test(arg)).map(Number);
  const chosen = scenarios.filter((spec) => ids.length === 0 || ids.includes(spec.id));
  const started = Date.now();

  let cluster: LocalCluster | undefined;
  let controllable: Promise<ControllableCluster> | undefined;
  const stopAll = async () => {
    await Promise.allSettled([cluster?.stop(), controllable?.then((c) => c.close())]);
  };
  process.once("SIGINT", () => void stopAll().finally(() => process.exit(130)));
  process.once("SIGTERM", () => void stopAll().finally(() => process.exit(143)));

  const rows: Array<{ id: number; result: ScenarioResult; violations: string[] }> = [];
  const failures: string[] = [];
  try {
    cluster = await startLocalCluster({ log: say, handleSignals: false });
    for (const spec of chosen) {
      const size = short ? spec.short : spec.full;
      say(`\n#${spec.id} ${spec.title}: ${size.devices} devices, ${size.rate} req/s, ${size.pushRate} pushes/s`);
      try {
        const result = await spec.run(
          {
            cluster,
            controllable: () => {
              controllable ??= startControllableCluster(say);
              return controllable;
            },
            log: say,
          },
          size,
        );
        const broken = violations(spec, result);
        rows.push({ id: spec.id, result, violations: broken });
        say(describeResult(result));
        say(broken.length === 0 ? "PASS" : `FAIL: ${broken.join("; ")}`);
        if (broken.length > 0) failures.push(`#${spec.id}: ${broken.join("; ")}`);
      } catch (error) {
        failures.push(`#${spec.id}: ${error instanceof Error ? error.message : String(error)}`);
        say(`ERROR: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      }
    }
  } finally {
    await stopAll();
  }

  if (!short && rows.length > 0) {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root }).toString().trim();
    const section = [
      "## Fault and load scenarios",
      "",
      `Measured ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC at commit ${commit} on ` +
        `${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, with everything on one machine: ` +
        "Kafka 4 (KRaft, one node), DynamoDB Local, the edges and workers as separate Node processes, a round-robin " +
        "TCP balancer and the SDK load generator in the driving process. Devices authenticate with `hmac`; the " +
        "handler is `echo`; edges run with the default 10 s slot lease and a 5 s drain window.",
      "",
      resultTable(rows),
      "",
      "Columns: *sent* requests made, *acked* with an `ack` seen by the device, *answered* with a final `res` or " +
        "`error` (some answers overtake their ack, so answered may exceed acked), *lost* acked and never answered, " +
        "*dup* answers the edges wrote twice for one id (at least once: the SDK drops repeats), *pushes* produced " +
        "to `downlink` / handed to the device, *reconnects* sessions re-opened after the first, *recovery* from the " +
        "fault to the send time of the last request that saw trouble (a retry, an error, an answer slower than 1 s), " +
        "*RSS* of the edge under attack (7, 8).",
      "",
      "Details per scenario:",
      "",
      ...rows.map(({ id, result }) => `- ${id}. ${describeResult(result)}`),
      "",
      "Reproduce:",
      "",
      "```sh",
      "npm run soak                # every scenario at full size; rewrites this section",
      "npm run soak -- 1 6         # chosen scenarios",
      "npm run soak -- --short     # the CI sizes (also run by npm test as test/soak/soak.int.test.ts)",
      "```",
    ].join("\n");
    writeSection(join(root, "BENCHMARKS.md"), section);
    say("\nBENCHMARKS.md updated (soak section)");
  }
  say(`\nsoak took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  for (const failure of failures) say(`FAILED ${failure}`);
  return failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
