/** The edge process itself (in-memory adapters): start-up checks, serving, SIGTERM drain. */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { describe, it } from "node:test";
import { freePort } from "../../harness/net.ts";
import { Device } from "./helpers.ts";

function startEdgeProcess(env: Record<string, string>): {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
} {
  const child = spawn(process.execPath, ["--import", "tsx", "services/edge/main.ts"], {
    env: { PATH: process.env.PATH ?? "", TETHER_BROKER: "memory", TETHER_REGISTRY: "memory", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => output, exited };
}

describe("edge process", () => {
  it("refuses auth mode none in production with a message naming the variable", async () => {
    const { exited, output } = startEdgeProcess({ TETHER_AUTH_MODE: "none" });
    const code = await exited;
    assert.notEqual(code, 0);
    assert.match(output(), /TETHER_AUTH_MODE/);
    assert.match(output(), /TETHER_ENV=development/);
  });

  it("serves devices and drains on SIGTERM: bye draining, then exit 0", async (t) => {
    const port = await freePort();
    const httpPort = await freePort();
    const edge = startEdgeProcess({
      TETHER_ENV: "development",
      TETHER_DEVICE_PORT: String(port),
      TETHER_MQTT_PORT: "0",
      TETHER_WS_PORT: "0",
      TETHER_EDGE_HTTP_PORT: String(httpPort),
      TETHER_DRAIN_MS: "300",
      TETHER_LOG_LEVEL: "warn",
    });
    t.after(() => {
      if (edge.child.exitCode === null) edge.child.kill("SIGKILL");
    });
    let ready = false;
    for (let i = 0; i < 100 && !ready; i++) {
      try {
        ready = (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status === 200;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    assert.ok(ready, `edge never became ready: ${edge.output()}`);
    const device = await Device.connect(port);
    t.after(() => device.close());
    assert.equal((await device.hello("proc-1")).t, "welcome");
    device.send({ t: "ping" });
    assert.deepEqual(await device.nextOfType("pong"), { t: "pong" });

    edge.child.kill("SIGTERM");
    const bye = await device.nextOfType("bye", 5000);
    assert.equal(bye.reason, "draining");
    assert.ok(typeof bye.reconnectMs === "number" && bye.reconnectMs < 300);
    assert.equal(await edge.exited, 0, edge.output());
  });
});
