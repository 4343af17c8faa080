import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import packageJson from "../../../package.json" with { type: "json" };
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

interface Running {
  readonly child: ChildProcess;
  /** What it printed so far, stdout and stderr together (a terminal merges them anyway). */
  output(): string;
  /** Resolves once `text` (or a match of it) has been printed. */
  printed(text: RegExp): Promise<void>;
  readonly done: Promise<Run & { readonly exitedAt: number }>;
}

/**
 * Starts the CLI and leaves it running, for tests that act on it while it runs (Ctrl-C). With
 * `terminal`, it runs on a pseudo-terminal (through util-linux `script`), so that it sees a TTY
 * as on a user's screen; what is written to `child.stdin` is then typed on that terminal.
 */
function startTether(args: readonly string[], options: { terminal?: boolean } = {}): Running {
  const env: Record<string, string | undefined> = { ...process.env, TERM: "dumb" };
  delete env.TETHER_AUTH_SECRET;
  const command = [process.execPath, BIN, ...args].map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(" ");
  const child =
    options.terminal === true
      ? spawn("script", ["--quiet", "--return", "--command", command, "/dev/null"], { env, stdio: "pipe" })
      : spawn(process.execPath, [BIN, ...args], { env, stdio: "pipe" });
  let stdout = "";
  let stderr = "";
  const waiting = new Set<{ text: RegExp; resolve: () => void }>();
  const check = (): void => {
    for (const wait of waiting) {
      if (wait.text.test(stdout + stderr)) {
        waiting.delete(wait);
        wait.resolve();
      }
    }
  };
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
    check();
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
    check();
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const done = once(child, "close").then(([code]) => {
    clearTimeout(killer);
    return { code: code as number | null, stdout, stderr, exitedAt: performance.now() };
  });
  return {
    child,
    output: () => stdout + stderr,
    printed: (text) =>
      new Promise<void>((resolve, reject) => {
        waiting.add({ text, resolve });
        check();
        void done.then(() => reject(new Error(`exited before printing ${text}:\n${stdout}${stderr}`)));
      }),
    done,
  };
}

/** An edge that accepts connections and never answers a hello: connecting hangs. */
async function startSilentEdge(t: TestContext): Promise<FakeEdge> {
  const edge = new FakeEdge({ onFrame: () => {} });
  await edge.listen();
  t.after(() => edge.close());
  return edge;
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
    assert.equal(
      refused.stderr,
      `tether send: cannot connect to 127.0.0.1:${port}: connection refused (nothing listens on that port)\n`,
    );
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
    assert.match(run.stdout, /latency ms: +min [\d.]+ +p50 [\d.]+ +p90 [\d.]+ +p99 [\d.]+/);
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

describe("tether help, version and mistakes", () => {
  it("prints the package version with --version and -v", async () => {
    for (const flag of ["--version", "-v"]) {
      const run = await tether([flag]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, `${packageJson.version}\n`);
    }
  });

  it("prints one command's usage, not the global one, for tether <command> --help and tether help <command>", async () => {
    for (const args of [
      ["send", "--help"],
      ["help", "send"],
      ["send", "echo", "-h"],
    ]) {
      const run = await tether(args);
      assert.equal(run.code, 0, args.join(" "));
      assert.match(run.stdout, /^usage: tether send <type> \[json\]/, args.join(" "));
      assert.match(run.stdout, /connection options:\n {2}--host H/);
      assert.doesNotMatch(run.stdout, /tether bench|tether token/, "only send's usage");
    }
    const bench = await tether(["help", "bench"]);
    assert.match(bench.stdout, /--concurrency C/);
    const token = await tether(["token", "--help"]);
    assert.equal(token.code, 0);
    assert.match(token.stdout, /^usage: tether token <deviceId>/);
    assert.doesNotMatch(token.stdout, /connection options/, "token does not connect");
    const global = await tether(["help"]);
    assert.equal(global.code, 0);
    assert.match(global.stdout, /^ {2}send {6}send one request/m);
  });

  it("suggests the command meant by a mistyped one, in one line with exit code 2", async () => {
    const cases: Array<[string, string]> = [
      ["sned", "send"],
      ["bnech", "bench"],
      ["conect", "connect"],
      ["tokens", "token"],
    ];
    for (const [typed, meant] of cases) {
      const run = await tether([typed]);
      assert.equal(run.code, 2, typed);
      assert.equal(run.stdout, "");
      assert.equal(run.stderr, `tether: unknown command "${typed}"; did you mean "${meant}"? (see tether --help)\n`);
    }
    const help = await tether(["help", "sendd"]);
    assert.equal(help.code, 2);
    assert.match(help.stderr, /did you mean "send"\?/);
    const far = await tether(["frobnicate"]);
    assert.equal(far.stderr, 'tether: unknown command "frobnicate" (see tether --help)\n');
    const option = await tether(["--verison"]);
    assert.equal(option.code, 2);
    assert.match(option.stderr, /unknown option --verison; did you mean --version\?/);
  });

  it("names an unknown option in one line, with the option meant, instead of the parser's message", async () => {
    const port = String(await freePort());
    const cases: Array<[string[], RegExp]> = [
      [["send", "echo", "--prot", port], /^tether send: unknown option --prot; did you mean --port\?/],
      [
        ["bench", "--devcies", "3", "--max", "--duration", "1"],
        /^tether bench: unknown option --devcies; did you mean --devices\?/,
      ],
      [["token", "d", "--secert", "s"], /^tether token: unknown option --secert; did you mean --secret\?/],
      [["bench", "--concur", "3"], /^tether bench: unknown option --concur; did you mean --concurrency\?/],
      [["send", "echo", "-1"], /^tether send: unknown option -1; an argument that starts with "-" goes after "--"/],
      [["send", "echo", "--port"], /^tether send: --port needs a value/],
      [["send", "echo", "--port", "--tls"], /^tether send: --port needs a value/],
      [["send", "echo", "--tls=yes"], /^tether send: --tls takes no value/],
    ];
    for (const [args, message] of cases) {
      const run = await tether(args);
      assert.equal(run.code, 2, args.join(" "));
      assert.equal(run.stdout, "");
      assert.match(run.stderr, message, args.join(" "));
      assert.equal(run.stderr.trimEnd().split("\n").length, 1, `one line: ${run.stderr}`);
      assert.doesNotMatch(run.stderr, /To specify a positional argument|argument missing/);
    }
  });
});

describe("tether when the edge is not there", () => {
  it("connect on a terminal fails at once on a refused port instead of retrying for ever", async () => {
    const port = String(await freePort());
    const started = performance.now();
    const session = startTether(["connect", "--port", port], { terminal: true });
    const run = await session.done;
    assert.equal(run.code, 1, session.output());
    assert.match(
      session.output(),
      new RegExp(`tether connect: cannot connect to 127\\.0\\.0\\.1:${port}: connection refused`),
    );
    assert.ok(run.exitedAt - started < 10_000, `exited after ${Math.round(run.exitedAt - started)} ms`);
  });

  it("bench fails at once with one line on a refused port and prints no report of zeros", async () => {
    const port = String(await freePort());
    const started = performance.now();
    const run = await tether(["bench", "--devices", "50", "--rate", "100", "--duration", "5", "--port", port]);
    const ms = performance.now() - started;
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "", "no report");
    assert.equal(
      run.stderr,
      `tether bench: cannot connect to 127.0.0.1:${port}: connection refused (nothing listens on that port)\n`,
    );
    assert.ok(ms < 5000, `took ${Math.round(ms)} ms; the old bench waited out a 10 s connect timeout`);
  });

  it("bench fails at once when the edge refuses the first device's token", async (t) => {
    const edge = await startEdge(t);
    edge.onFrame = (conn, frame) => {
      if (frame.t === "hello") {
        conn.send({ t: "error", code: "unauthorized", message: "bad token" });
        conn.close();
      }
    };
    const run = await tether(["bench", "--devices", "20", "--max", "--duration", "1", "--port", String(edge.port)]);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, /^tether bench: cannot connect to 127\.0\.0\.1:\d+: unauthorized: /);
    assert.equal(edge.connections.length, 1, "the other devices never tried");
  });
});

describe("tether and Ctrl-C", () => {
  /** Sends SIGINT once the edge has seen a connection, and measures how long the CLI takes to exit. */
  async function interruptWhileConnecting(edge: FakeEdge, args: readonly string[]): Promise<Run & { ms: number }> {
    const running = startTether(args);
    await edge.nextConnection(0);
    const at = performance.now();
    running.child.kill("SIGINT");
    const run = await running.done;
    return { ...run, ms: run.exitedAt - at };
  }

  it("send stops on the first Ctrl-C while it connects, with exit code 130", async (t) => {
    const edge = await startSilentEdge(t);
    const run = await interruptWhileConnecting(edge, [
      "send",
      "echo",
      "1",
      "--port",
      String(edge.port),
      "--timeout",
      "20000",
    ]);
    assert.equal(run.code, 130, run.stderr);
    assert.ok(run.ms < 3000, `exited ${Math.round(run.ms)} ms after Ctrl-C`);
  });

  it("send stops on the first Ctrl-C while it waits for the answer", async (t) => {
    const edge = await startEdge(t);
    edge.onFrame = (conn, frame) => {
      if (frame.t !== "req") defaultBehaviour()(conn, frame);
    };
    const running = startTether(["send", "slow", "--port", String(edge.port), "--timeout", "20000"]);
    while (edge.received("req").length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    const at = performance.now();
    running.child.kill("SIGINT");
    const run = await running.done;
    assert.equal(run.code, 130, run.stderr);
    assert.ok(run.exitedAt - at < 3000, `exited ${Math.round(run.exitedAt - at)} ms after Ctrl-C`);
  });

  it("bench stops on the first Ctrl-C while its devices connect, and still reports", async (t) => {
    const edge = await startSilentEdge(t);
    const run = await interruptWhileConnecting(edge, [
      ...["bench", "--devices", "3", "--rate", "10", "--duration", "5", "--json", "--quiet"],
      ...["--port", String(edge.port), "--timeout", "20000"],
    ]);
    assert.equal(run.code, 130, run.stderr);
    assert.ok(run.ms < 3000, `exited ${Math.round(run.ms)} ms after Ctrl-C`);
    const result = JSON.parse(run.stdout) as { interrupted: boolean; connect: { connected: number } };
    assert.equal(result.interrupted, true);
    assert.equal(result.connect.connected, 0);
  });

  it("bench stops on the first Ctrl-C while it sends, reports what it measured and exits with 130", async (t) => {
    const edge = await startEdge(t);
    const running = startTether([
      ...["bench", "--devices", "2", "--rate", "50", "--duration", "30", "--port", String(edge.port)],
    ]);
    await running.printed(/^bench \d/m);
    const at = performance.now();
    running.child.kill("SIGINT");
    const run = await running.done;
    assert.equal(run.code, 130, run.stderr);
    assert.ok(run.exitedAt - at < 3000, `exited ${Math.round(run.exitedAt - at)} ms after Ctrl-C`);
    assert.match(run.stdout, /^requests: +[\d,]+ sent, [\d,]+ ok, 0 errors in [\d.]+ s \(interrupted\)$/m);
  });

  it("connect on a terminal stops on the first Ctrl-C while it connects", async (t) => {
    const edge = await startSilentEdge(t);
    const session = startTether(["connect", "--port", String(edge.port)], { terminal: true });
    await edge.nextConnection(0);
    const at = performance.now();
    session.child.stdin?.write("\u0003");
    const run = await session.done;
    assert.equal(run.code, 130, session.output());
    assert.ok(run.exitedAt - at < 3000, `exited ${Math.round(run.exitedAt - at)} ms after Ctrl-C`);
  });

  it("connect on a terminal leaves on Ctrl-C at the prompt with exit code 130", async (t) => {
    const edge = await startEdge(t);
    const session = startTether(["connect", "--port", String(edge.port), "--device", "tty-1"], { terminal: true });
    await session.printed(/connected to 127\.0\.0\.1:\d+ as tty-1/);
    session.child.stdin?.write('echo {"on":"tty"}\r');
    await session.printed(/res \S+ \{"on":"tty"\}/);
    session.child.stdin?.write("\u0003");
    const run = await session.done;
    assert.equal(run.code, 130, session.output());
    assert.equal(edge.received("bye").length, 1, "said bye on the way out");
  });
});

describe("tether bench counts and progress", () => {
  it("sends exactly rate x duration requests: 1,000 at 1,000 req/s for 1 s", async (t) => {
    const edge = await startEdge(t);
    const run = await tether([
      ...["bench", "--devices", "5", "--rate", "1000", "--duration", "1", "--json", "--quiet"],
      ...["--port", String(edge.port)],
    ]);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as {
      requests: { sent: number; ok: number };
      elapsedSec: number;
      latencyMs: { min: number; p50: number; p999: number; max: number };
    };
    assert.equal(result.requests.sent, 1000);
    assert.equal(result.requests.ok, 1000);
    assert.equal(edge.received("req").length, 1000);
    assert.ok(result.elapsedSec >= 1, `the window lasts the whole second: ${result.elapsedSec}`);
    const l = result.latencyMs;
    assert.ok(l.min <= l.p50 && l.p50 <= l.p999 && l.p999 <= l.max, JSON.stringify(l));
  });

  it("shows progress while many devices connect", async (t) => {
    const edge = await startEdge(t);
    const run = await tether([
      ...["bench", "--devices", "15", "--connect-rate", "8", "--rate", "20", "--duration", "0.5"],
      ...["--port", String(edge.port)],
    ]);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stderr.split("\n").filter((line) => line.startsWith("bench connecting "));
    assert.ok(lines.length >= 1, run.stderr);
    assert.match(lines[0] ?? "", /^bench connecting \d+\/15 devices, 0 failed$/);
    assert.match(run.stdout, /^connect: +15 connected, 0 failed/m);
  });
});
