import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { createAuthenticator, expiringHmacToken, hmacToken } from "../../../shared/auth/index.ts";
import { freePort } from "../../harness/net.ts";
import { defaultBehaviour, FakeEdge } from "../../shared/sdk/fake-edge.ts";

const BIN = fileURLToPath(new URL("../../../bin/tether.mjs", import.meta.url));

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI as a user would, as a separate process (asynchronously: the fake edge lives here). */
async function tether(
  args: readonly string[],
  options: { input?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  const env: Record<string, string | undefined> = { ...process.env, ...options.env };
  if (options.env?.TETHER_AUTH_SECRET === undefined) delete env.TETHER_AUTH_SECRET;
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  child.stdin.end(options.input ?? "");
  const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const [code] = (await once(child, "close")) as [number | null];
  clearTimeout(killer);
  return { code, stdout, stderr };
}

async function startEdge(t: TestContext): Promise<FakeEdge> {
  const edge = new FakeEdge();
  await edge.listen();
  t.after(() => edge.close());
  return edge;
}

describe("tether token", () => {
  it("prints the hmac token of a device for the secret given", async () => {
    const run = await tether(["token", "dev-1", "--secret", "s3cret"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${hmacToken("s3cret", "dev-1")}\n`);
  });

  it("takes the secret from TETHER_AUTH_SECRET", async () => {
    const run = await tether(["token", "a.b:c"], { env: { TETHER_AUTH_SECRET: "from-env" } });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), hmacToken("from-env", "a.b:c"));
  });

  it("prints a JWT the jwt mode accepts for that device only", async () => {
    const run = await tether(["token", "dev-9", "--secret", "k", "--jwt", "--ttl", "60"]);
    assert.equal(run.code, 0, run.stderr);
    const auth = createAuthenticator({ mode: "jwt", secret: "k" });
    assert.deepEqual(await auth.verify("dev-9", run.stdout.trim()), { ok: true });
    assert.equal((await auth.verify("dev-8", run.stdout.trim())).ok, false);
  });

  it("prints the expiring hmac token <exp>.<sig> with --ttl, exp being now + ttl", async () => {
    const before = Math.floor(Date.now() / 1000);
    const run = await tether(["token", "dev-1", "--secret", "s3cret", "--ttl", "3600"]);
    const after = Math.floor(Date.now() / 1000);
    assert.equal(run.code, 0, run.stderr);
    const token = run.stdout.trim();
    const match = /^(\d+)\.([A-Za-z0-9_-]{43})$/.exec(token);
    assert.ok(match, token);
    const exp = Number(match[1]);
    assert.ok(exp >= before + 3600 && exp <= after + 3600, `${exp} is now + 3600`);
    assert.equal(token, expiringHmacToken("s3cret", "dev-1", exp));
    const auth = createAuthenticator({ mode: "hmac", secret: "s3cret", hmacStatic: "refuse" });
    assert.deepEqual(await auth.verify("dev-1", token), { ok: true });
    assert.equal((await auth.verify("dev-2", token)).ok, false);
  });

  it("refuses a --ttl that is not a positive whole number of seconds", async () => {
    for (const ttl of ["0", "-5", "soon", "1.5"]) {
      const run = await tether(["token", "dev-1", "--secret", "s", "--ttl", ttl]);
      assert.equal(run.code, 2, ttl);
      assert.match(run.stderr, /--ttl/);
      assert.equal(run.stdout, "");
    }
  });

  it("exits with 2 and says why without a secret, with a bad deviceId or unknown options", async () => {
    const noSecret = await tether(["token", "dev-1"]);
    assert.equal(noSecret.code, 2);
    assert.match(noSecret.stderr, /secret/);
    const badId = await tether(["token", "bad id", "--secret", "s"]);
    assert.equal(badId.code, 2);
    assert.match(badId.stderr, /deviceId/);
    const unknown = await tether(["token", "d", "--secret", "s", "--nope"]);
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stdout, "");
  });
});

describe("tether usage", () => {
  it("prints usage with exit 0 on --help and exit 2 on no or an unknown command", async () => {
    const help = await tether(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /usage: tether/);
    const none = await tether([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /usage: tether/);
    const unknown = await tether(["frobnicate"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
  });
});

describe("tether send", () => {
  it("prints the answer body and sends the device's hmac token", async (t) => {
    const edge = await startEdge(t);
    const run = await tether([
      "send",
      "echo",
      '{"a":[1,"b"]}',
      "--port",
      String(edge.port),
      "--device",
      "d-1",
      "--secret",
      "k",
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, '{"a":[1,"b"]}\n');
    assert.deepEqual(edge.received("hello"), [{ t: "hello", v: 1, deviceId: "d-1", token: hmacToken("k", "d-1") }]);
    assert.equal(edge.received("req")[0]?.type, "echo");
    assert.equal(edge.received("bye").length, 1);
  });

  it("exits with 1 and prints the code on an error answer", async (t) => {
    const edge = await startEdge(t);
    edge.onFrame = (conn, frame) => {
      if (frame.t === "req")
        conn.send({ t: "error", id: frame.id, code: "unknown_type", message: "no handler", retryable: false });
      else defaultBehaviour()(conn, frame);
    };
    const run = await tether(["send", "nosuch", "--port", String(edge.port)]);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, /error unknown_type: no handler/);
  });

  it("connects over TLS trusting the CA file given with --tls-ca", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tether-cli-tls-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const certFile = join(dir, "cert.pem");
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
        .concat(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"])
        .concat(["-keyout", join(dir, "key.pem"), "-out", certFile]),
      { stdio: "ignore" },
    );
    const edge = new FakeEdge({
      tls: { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(certFile, "utf8") },
    });
    await edge.listen();
    t.after(() => edge.close());
    const port = String(edge.port);
    const ok = await tether(["send", "echo", '"secure"', "--host", "localhost", "--port", port, "--tls-ca", certFile]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, '"secure"\n');
    const untrusted = await tether(["send", "echo", "1", "--host", "localhost", "--port", port, "--tls"]);
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, /certificate/i);
  });

  it("exits with 1 when nothing listens and with 2 on a body that is not JSON", async () => {
    const port = await freePort();
    const refused = await tether(["send", "echo", "1", "--port", String(port)]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /connect_failed/);
    const notJson = await tether(["send", "echo", "{oops", "--port", String(port)]);
    assert.equal(notJson.code, 2);
    assert.match(notJson.stderr, /JSON/);
  });
});

describe("tether connect", () => {
  it("runs the requests typed on a piped stdin and prints answers, pongs and pushes", async (t) => {
    const edge = await startEdge(t);
    edge.onFrame = (conn, frame) => {
      if (frame.t === "hello") {
        defaultBehaviour()(conn, frame);
        conn.send({ t: "push", id: "m-1", type: "config", body: { every: 60 } });
        return;
      }
      if (frame.t === "req" && frame.type === "fail") {
        conn.send({ t: "error", id: frame.id, code: "invalid_input", message: "bad", retryable: false });
        return;
      }
      defaultBehaviour()(conn, frame);
    };
    const input = 'echo {"x":1}\n\nping\necho "two"\nfail\necho {broken\n';
    const run = await tether(["connect", "--port", String(edge.port), "--device", "pipe-1"], { input });
    assert.equal(run.code, 1, "an error answer makes a scripted session fail");
    const lines = run.stdout.trim().split("\n");
    assert.ok(
      lines.some((l) => /^res \S+ \{"x":1\}$/.test(l)),
      run.stdout,
    );
    assert.ok(
      lines.some((l) => /^res \S+ "two"$/.test(l)),
      run.stdout,
    );
    assert.ok(
      lines.some((l) => /^pong \d+(\.\d)? ms$/.test(l)),
      run.stdout,
    );
    assert.ok(
      lines.some((l) => /^error \S+ invalid_input: bad$/.test(l)),
      run.stdout,
    );
    assert.ok(lines.includes('push m-1 config {"every":60}'), run.stdout);
    assert.match(run.stderr, /connected to 127\.0\.0\.1:\d+ as pipe-1/);
    assert.match(run.stderr, /must be JSON/);
    assert.deepEqual(edge.received("ack"), [{ t: "ack", id: "m-1" }]);
    assert.equal(edge.received("req").length, 3);
  });

  it("exits with 1 when it cannot connect", async () => {
    const run = await tether(["connect", "--port", String(await freePort())]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /cannot connect/);
  });
});

describe("tether bench", () => {
  it("reports throughput, latency percentiles and errors as one JSON object", async (t) => {
    const edge = await startEdge(t);
    const run = await tether([
      "bench",
      "--devices",
      "5",
      "--rate",
      "200",
      "--duration",
      "1",
      "--json",
      "--body-bytes",
      "32",
      "--port",
      String(edge.port),
    ]);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as {
      mode: string;
      devices: number;
      connect: { connected: number };
      requests: { sent: number; ok: number; errors: number };
      throughput: number;
      latencyMs: { p50: number; p90: number; p99: number; max: number; count: number };
    };
    assert.equal(result.mode, "rate");
    assert.equal(result.connect.connected, 5);
    assert.ok(result.requests.ok >= 150 && result.requests.ok <= 210, `ok ${result.requests.ok}`);
    assert.equal(result.requests.errors, 0);
    assert.equal(result.latencyMs.count, result.requests.ok);
    assert.ok(result.latencyMs.p50 > 0 && result.latencyMs.p50 <= result.latencyMs.p99);
    assert.ok(result.latencyMs.p99 <= result.latencyMs.max);
    assert.match(run.stderr, /^bench /m, "plain progress lines when stderr is not a terminal");
    assert.equal(new Set(edge.received("hello").map((h) => h.deviceId)).size, 5);
  });

  it("drives maximum throughput and counts errors by code", async (t) => {
    const edge = await startEdge(t);
    let n = 0;
    edge.onFrame = (conn, frame) => {
      if (frame.t === "req" && ++n % 10 === 0) {
        conn.send({ t: "error", id: frame.id, code: "rate_limited", retryAfterMs: 5 });
        return;
      }
      defaultBehaviour()(conn, frame);
    };
    const run = await tether([
      "bench",
      "--devices",
      "3",
      "--max",
      "--duration",
      "1",
      "--port",
      String(edge.port),
      "--quiet",
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /throughput: +[\d,]+ req\/s/);
    assert.match(run.stdout, /latency ms: +p50 [\d.]+ +p90 [\d.]+ +p99 [\d.]+/);
    assert.match(run.stdout, /errors: +rate_limited [\d,]+/);
    assert.equal(run.stderr, "");
  });

  it("exits with 2 on incomplete or contradictory options", async () => {
    for (const args of [
      ["bench", "--rate", "10", "--duration", "1"],
      ["bench", "--devices", "1", "--duration", "1"],
      ["bench", "--devices", "1", "--rate", "5", "--max", "--duration", "1"],
      ["bench", "--devices", "zero", "--max", "--duration", "1"],
    ]) {
      const run = await tether(args);
      assert.equal(run.code, 2, args.join(" "));
      assert.match(run.stderr, /tether bench: /);
    }
  });
});
