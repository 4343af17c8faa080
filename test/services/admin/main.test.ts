/** The admin API process itself (in-memory adapters): start-up checks, serving, SIGTERM. */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { describe, it } from "node:test";
import { freePort } from "../../harness/net.ts";

function startAdminProcess(env: Record<string, string>): {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
} {
  const child = spawn(process.execPath, ["--import", "tsx", "services/admin/main.ts"], {
    env: { PATH: process.env.PATH ?? "", TETHER_BROKER: "memory", TETHER_REGISTRY: "memory", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const collect = (chunk: Buffer): void => {
    output += chunk.toString();
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function waitForHealth(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 150; i += 1) {
    if (child.exitCode !== null) throw new Error("the admin process exited during start-up");
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("the admin process never answered /healthz");
}

describe("admin process", { timeout: 60_000 }, () => {
  it("refuses to start in production without TETHER_ADMIN_TOKEN, naming the variable", async () => {
    const { exited, output } = startAdminProcess({});
    assert.notEqual(await exited, 0);
    assert.match(output(), /TETHER_ADMIN_TOKEN/);
  });

  it("serves the API with the configured token and exits 0 on SIGTERM", async (t) => {
    const port = await freePort();
    const admin = startAdminProcess({
      TETHER_ADMIN_PORT: String(port),
      TETHER_ADMIN_HOST: "127.0.0.1",
      TETHER_ADMIN_TOKEN: "process-test-token",
      TETHER_LOG_LEVEL: "warn",
    });
    t.after(() => {
      if (admin.child.exitCode === null) admin.child.kill("SIGKILL");
    });
    await waitForHealth(port, admin.child);
    const denied = await fetch(`http://127.0.0.1:${port}/v1/edges`);
    assert.equal(denied.status, 401);
    const allowed = await fetch(`http://127.0.0.1:${port}/v1/edges`, {
      headers: { authorization: "Bearer process-test-token" },
    });
    assert.equal(allowed.status, 200);
    const pushed = await fetch(`http://127.0.0.1:${port}/v1/devices/d1/messages`, {
      method: "POST",
      headers: { authorization: "Bearer process-test-token", "content-type": "application/json" },
      body: JSON.stringify({ type: "note", body: "hi" }),
    });
    assert.equal(pushed.status, 202);
    admin.child.kill("SIGTERM");
    assert.equal(await admin.exited, 0);
    assert.ok(!admin.output().includes("process-test-token"), "the token is never printed when it was given");
  });

  it("in development generates a token, prints it once and accepts it", async (t) => {
    const port = await freePort();
    const admin = startAdminProcess({ TETHER_ENV: "development", TETHER_ADMIN_PORT: String(port) });
    t.after(() => {
      if (admin.child.exitCode === null) admin.child.kill("SIGKILL");
    });
    await waitForHealth(port, admin.child);
    const token = /generated one for this run: (\S+)/.exec(admin.output())?.[1];
    assert.ok(token !== undefined, admin.output());
    const response = await fetch(`http://127.0.0.1:${port}/v1/edges`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(response.status, 200);
    admin.child.kill("SIGTERM");
    assert.equal(await admin.exited, 0);
  });
});
