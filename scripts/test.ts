/**
 * `npm test`: runs every test file under test/ with Node's test runner. When integration tests
 * (`*.int.test.ts`) are among them and TETHER_KAFKA_BROKERS / TETHER_DYNAMODB_ENDPOINT are not
 * set, it starts one local Kafka + DynamoDB Local for the whole run, hands their addresses to
 * the tests, and stops them at the end (keeping their logs when something failed).
 *
 *   npm test                      every test
 *   npm test -- --unit            only unit tests (no cluster)
 *   npm test -- registry kafka    test files whose path contains any of the words
 *   npm test -- test/a.test.ts    exactly these files
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { type LocalCluster, startLocalCluster, sweepOrphans } from "../test/harness/index.ts";

const root = resolve(import.meta.dirname, "..");
const testRoot = join(root, "test");
/** Whole-run bound, so a hung test cannot hold CI until its own limit. */
const runTimeoutMs = Number(process.env.TETHER_TEST_TIMEOUT_MS ?? 40 * 60 * 1000);

function findTests(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith(".test.ts")) found.push(path);
  }
  return found;
}

function select(args: readonly string[]): string[] {
  const unitOnly = args.includes("--unit");
  const words = args.filter((arg) => !arg.startsWith("--"));
  let files = findTests(testRoot).sort();
  if (unitOnly) files = files.filter((file) => !file.endsWith(".int.test.ts"));
  if (words.length > 0) {
    const exact = words.filter((word) => existsSync(resolve(word)) && statSync(resolve(word)).isFile());
    if (exact.length === words.length) return exact.map((word) => resolve(word));
    files = files.filter((file) => words.some((word) => relative(root, file).includes(word)));
  }
  return files;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function groupAlive(pgid: number | undefined): boolean {
  if (pgid === undefined) return false;
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function verifyStopped(cluster: LocalCluster): Promise<boolean> {
  const deadline = Date.now() + 5000;
  while (groupAlive(cluster.kafkaPid) || groupAlive(cluster.dynamodbPid)) {
    if (Date.now() > deadline) return false;
    await new Promise((done) => setTimeout(done, 100));
  }
  return !existsSync(cluster.dir);
}

async function main(): Promise<number> {
  const started = Date.now();
  const files = select(process.argv.slice(2));
  if (files.length === 0) {
    say("no test files matched");
    return 1;
  }
  const integration = files.filter((file) => file.endsWith(".int.test.ts")).length;
  say(`${files.length} test files (${integration} integration, ${files.length - integration} unit)`);

  const env: NodeJS.ProcessEnv = { ...process.env };
  let cluster: LocalCluster | undefined;
  let child: ReturnType<typeof spawn> | undefined;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    say(`\n${signal}: stopping the tests and the local cluster`);
    child?.kill(signal);
    void (cluster?.stop() ?? Promise.resolve()).finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const haveCluster = Boolean(env.TETHER_KAFKA_BROKERS?.trim() && env.TETHER_DYNAMODB_ENDPOINT?.trim());
  if (integration > 0 && !haveCluster) {
    const clusterStart = Date.now();
    cluster = await startLocalCluster({ log: say, handleSignals: false });
    env.TETHER_KAFKA_BROKERS = cluster.kafkaBrokers;
    env.TETHER_DYNAMODB_ENDPOINT = cluster.dynamodbEndpoint;
    say(
      `local cluster ready in ${Date.now() - clusterStart} ms ` +
        `(Kafka start ${cluster.kafkaStartMs} ms, DynamoDB Local start ${cluster.dynamodbStartMs} ms)`,
    );
  } else if (integration > 0) {
    say(`integration tests use Kafka ${env.TETHER_KAFKA_BROKERS} and DynamoDB ${env.TETHER_DYNAMODB_ENDPOINT}`);
  }

  let code = 1;
  const counts = { pass: -1, fail: -1 };
  try {
    child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "--test",
        "--test-reporter=spec",
        "--test-concurrency=2",
        ...files.map((file) => relative(root, file)),
      ],
      { cwd: root, env, stdio: ["ignore", "pipe", "inherit"] },
    );
    let tail = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      process.stdout.write(chunk);
      tail = (tail + chunk.toString("utf8")).slice(-4096);
      for (const key of ["pass", "fail"] as const) {
        const match = new RegExp(`ℹ ${key} (\\d+)\\s*$`, "m").exec(tail);
        if (match?.[1] !== undefined) counts[key] = Number(match[1]);
      }
    });
    const runTimer = setTimeout(() => {
      say(`test run exceeded ${runTimeoutMs} ms; stopping it`);
      child?.kill("SIGTERM");
    }, runTimeoutMs);
    code = await new Promise<number>((done) => {
      child!.once("exit", (exitCode, signal) => done(exitCode ?? (signal === null ? 1 : 128)));
    });
    clearTimeout(runTimer);
  } finally {
    if (cluster !== undefined && !stopping) {
      await cluster.stop({ keepLogs: code !== 0 });
      if (await verifyStopped(cluster)) {
        say("local cluster stopped: no Kafka or DynamoDB Local process left, temp dir removed");
      } else {
        say("local cluster did NOT stop cleanly: a process or its temp dir is left");
        if (code === 0) code = 1;
      }
    }
  }
  // Every test process has exited; temp dirs a crashed one left behind go now.
  const orphans = sweepOrphans();
  if (orphans > 0) say(`removed ${orphans} temp dirs left by test processes that died`);
  say(`test run took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (counts.pass >= 0 && counts.fail >= 0) say(`tests: ${counts.pass} passed, ${counts.fail} failed`);
  return code;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
