/** Runs the embedded mode (`npm start`) as a child process on free ports, for end-to-end tests. */

import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

export { freePort } from "../../harness/net.ts";

import { freePort } from "../../harness/net.ts";

const MAIN = fileURLToPath(new URL("../../../services/embedded/main.ts", import.meta.url));

export interface Embedded {
  readonly devicePort: number;
  readonly adminUrl: string;
  readonly adminToken: string;
  readonly output: () => string;
  /** SIGTERM (drain) or SIGKILL, and wait for the exit; resolves with the exit code. */
  stop(signal?: "SIGTERM" | "SIGKILL"): Promise<number | null>;
}

export interface EmbeddedOptions {
  readonly devicePort?: number;
  readonly adminPort?: number;
  readonly env?: Readonly<Record<string, string>>;
}

export async function startEmbedded(options: EmbeddedOptions = {}): Promise<Embedded> {
  const devicePort = options.devicePort ?? (await freePort());
  const adminPort = options.adminPort ?? (await freePort());
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", MAIN], {
    env: {
      ...process.env,
      TETHER_DEVICE_PORT: String(devicePort),
      TETHER_MQTT_PORT: "0",
      TETHER_WS_PORT: "0",
      TETHER_ADMIN_PORT: String(adminPort),
      TETHER_EDGE_HTTP_PORT: "0",
      TETHER_DRAIN_MS: "500",
      TETHER_LOG_LEVEL: "warn",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    output += d;
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    output += d;
  });
  const exited = once(child, "exit") as Promise<[number | null]>;
  const deadline = Date.now() + 30_000;
  while (!/admin token\s+(\S+)/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`embedded mode did not start:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const adminToken = /admin token\s+(\S+)/.exec(output)?.[1] ?? "";
  let stopped: Promise<number | null> | undefined;
  return {
    devicePort,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    adminToken,
    output: () => output,
    stop(signal = "SIGTERM") {
      if (stopped === undefined) {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
        stopped = exited.then(([code]) => {
          clearTimeout(killer);
          return code;
        });
      }
      return stopped;
    },
  };
}
