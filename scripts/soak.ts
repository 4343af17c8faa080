/**
 * `npm run soak`: the fault-and-load scenarios at full size on a local cluster (Kafka 4 KRaft and
 * DynamoDB Local, plus a private pair for the broker and database outages), edges and workers as
 * separate processes. Every scenario drives SDK devices and, next to them, raw devices that never
 * resend. After the scenarios it runs the delivery-guarantee suite (test/guarantees) on the same
 * cluster. Prints each scenario's counts and each guarantee's report line, writes the table and
 * the guarantee lines into BENCHMARKS.md between the soak markers, and exits 1 when a scenario
 * breaks its rules or a guarantee test fails.
 *
 *   npm run soak                     every scenario, full size, then the guarantee suite at full size
 *   npm run soak -- 1 5              scenarios 1 and 5 (no guarantee suite unless --guarantees)
 *   npm run soak -- --short          the CI sizes and the guarantees' short forms (no BENCHMARKS.md update)
 *   npm run soak -- --no-guarantees  the scenarios only
 */
import { execFileSync } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { type LocalCluster, startLocalCluster } from "../test/harness/index.ts";
import { type GuaranteeRun, runGuarantees } from "../test/soak/guarantees.ts";
import { type ControllableCluster, startControllableCluster } from "../test/soak/kafka-control.ts";
import { RAW_MIN_DEVICES, RAW_SHARE } from "../test/soak/raw-share.ts";
import { describeResult, resultTable, writeSection } from "../test/soak/report.ts";
import { EDGES, REPLY_SLOTS, type ScenarioResult } from "../test/soak/scenarios.ts";
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
  const withGuarantees = !args.includes("--no-guarantees") && (ids.length === 0 || args.includes("--guarantees"));
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
  let guarantees: GuaranteeRun | undefined;
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
    if (withGuarantees) {
      say(`\nDelivery guarantees (raw devices, no resend): test/guarantees, ${short ? "short forms" : "full size"}`);
      guarantees = await runGuarantees({ root, cluster, full: !short, log: say });
      say("\nDelivery guarantees (raw devices, no resend):");
      for (const line of guarantees.reports) say(`# ${line}`);
      say(
        `guarantee suite: ${guarantees.passed} passed, ${guarantees.failed} failed, exit ${guarantees.code}, ` +
          `took ${(guarantees.durationMs / 1000).toFixed(0)} s`,
      );
      if (guarantees.code !== 0) {
        failures.push(`guarantee suite: ${guarantees.failed} failed (exit ${guarantees.code})`);
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
        "TCP balancer and the load generators in the driving process. The fleet has the production shape: " +
        `${REPLY_SLOTS} reply slots and ${EDGES} edges in every scenario. Next to the SDK devices (which send every open ` +
        `request again after each reconnect) run raw protocol devices, ${(RAW_SHARE * 100).toFixed(0)}% of the ` +
        `device count and at least ${RAW_MIN_DEVICES}, at the same rate per device, through the same balancer: they ` +
        "never send a request twice, reconnect after any disconnect with only a hello, and ack answers " +
        "(protocol 1.1 `ackAnswers`). Devices authenticate with `hmac`; the handler is `echo`; edges run with the " +
        "default 10 s slot lease and a 5 s drain window.",
      "",
      resultTable(rows),
      "",
      "Columns: *sent* requests made, *acked* with an `ack` seen by the device, *answered* with a final `res` or " +
        "`error` (some answers overtake their ack, so answered may exceed acked), *lost* acked and never answered, " +
        "*raw devices* their number with their acked / answered requests, *lost without resend* raw-device " +
        "requests acked and never answered on any connection by the end of the settle time (a scenario fails on " +
        "one), *dup* answers the edges wrote twice for one id (at least once: the SDK drops repeats), *pushes* produced " +
        "to `downlink` / handed to the device, *reconnects* sessions re-opened after the first, *recovery* from the " +
        "fault to the send time of the last request that saw trouble (a retry, an error, an answer slower than 1 s), " +
        "*RSS* of the edge under attack (7, 8). The SDK keeps no count of the requests it sent again, so what its " +
        "resend recovered has no column of its own: *lost* (SDK, resending) next to *lost without resend* (raw) " +
        "is that comparison. For raw devices, a request still lost after the settle time is sent once more " +
        "afterwards, and what that recovered is reported apart in the details.",
      "",
      "Details per scenario:",
      "",
      ...rows.map(({ id, result }) => `- ${id}. ${describeResult(result)}`),
      "",
      ...(guarantees === undefined
        ? []
        : [
            "Delivery guarantees (raw devices, no resend): `test/guarantees/*.int.test.ts` at full size " +
              "(`TETHER_GUARANTEE_FULL=1`) on the same cluster after the scenarios, " +
              `${guarantees.passed} passed, ${guarantees.failed} failed, in ${(guarantees.durationMs / 1000).toFixed(0)} s. ` +
              "What a resend would have recovered is the `recoveredByResend` figure, apart from the loss figures.",
            "",
            ...(guarantees.reports.length === 0
              ? ["- (no report lines)"]
              : guarantees.reports.map((line) => `- \`${line}\``)),
            "",
          ]),
      "Reproduce:",
      "",
      "```sh",
      "npm run soak                # every scenario at full size, then the guarantee suite; rewrites this section",
      "npm run soak -- 1 6         # chosen scenarios (add --guarantees for the guarantee suite)",
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
