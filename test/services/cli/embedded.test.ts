import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { startEmbedded } from "../../shared/sdk/embedded-process.ts";

const BIN = fileURLToPath(new URL("../../../bin/tether.mjs", import.meta.url));

async function tether(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const [code] = (await once(child, "close")) as [number | null];
  clearTimeout(killer);
  return { code, stdout, stderr };
}

describe("tether against the embedded mode in auth mode hmac", () => {
  it("sends with a token minted from the secret, is refused with a wrong one, and benches", async (t) => {
    const secret = "cli-e2e-secret";
    const e = await startEmbedded({ env: { TETHER_AUTH_MODE: "hmac", TETHER_AUTH_SECRET: secret } });
    t.after(() => e.stop("SIGKILL"));
    const port = String(e.devicePort);

    const sent = await tether(["send", "echo", '{"k":"v"}', "--port", port, "--device", "cli-e2e"], {
      TETHER_AUTH_SECRET: secret,
    });
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(sent.stdout, '{"k":"v"}\n');

    const refused = await tether(["send", "echo", "1", "--port", port, "--device", "cli-e2e", "--secret", "wrong"]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /unauthorized/);

    const token = (await tether(["token", "cli-e2e", "--secret", secret])).stdout.trim();
    const withToken = await tether(["send", "echo", '"t"', "--port", port, "--device", "cli-e2e", "--token", token]);
    assert.equal(withToken.stdout, '"t"\n', withToken.stderr);

    const bench = await tether(
      ["bench", "--devices", "10", "--rate", "500", "--duration", "1", "--json", "--quiet", "--port", port],
      { TETHER_AUTH_SECRET: secret },
    );
    assert.equal(bench.code, 0, bench.stderr);
    const result = JSON.parse(bench.stdout) as { requests: { ok: number; errors: number }; latencyMs: { p99: number } };
    assert.ok(result.requests.ok >= 400, JSON.stringify(result));
    assert.equal(result.requests.errors, 0);
    assert.ok(result.latencyMs.p99 > 0);
  });
});
