/**
 * Cost of sockets that never say hello. Each round starts one edge process (in-memory adapters),
 * opens N sockets that each write the start of a hello just under the pre-hello limit (2 KiB)
 * without its newline and then hold it, and reads the edge's resident memory. It also checks that
 * random junk is refused at its first byte, that a longer line is cut at once, and that a real
 * device is still served while the junk is held. The figure is the median over the rounds.
 *
 *   tsx bench/junk.ts [sockets=10000] [junkBytes=2000] [rounds=3]
 *
 * Memory is read after full garbage collections (bench/gc-on-signal.ts) at a quarter, half,
 * three quarters and all of the sockets; the fitted slope over the last three is what one more
 * socket costs, without the one-off growth of the heap's young generation early on. The client binds 127.x.0.2, .3, ... so that one loopback
 * address's ports are not the limit.
 */
import { spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { freePort, rssKiB, waitReady } from "./process.ts";

const count = Number(process.argv[2] ?? 10_000);
const junkBytes = Number(process.argv[3] ?? 2000);
const rounds = Number(process.argv[4] ?? 3);
const concurrency = 200;

/** The costliest junk: the start of a hello that never ends, `size` bytes long. */
function helloStart(size: number): Buffer {
  const start = Buffer.from('{"t":"hello","v":1,"deviceId":"junk","token":"');
  const bytes = Buffer.alloc(Math.max(size, start.length));
  start.copy(bytes);
  for (let i = start.length; i < bytes.length; i++) bytes[i] = 97 + Math.floor(Math.random() * 26);
  return bytes.subarray(0, Math.max(1, size));
}

function openSocket(port: number, localAddress: string, payload: Buffer): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1", localAddress }, () => {
      socket.write(payload, () => resolve(socket));
    });
    socket.once("error", reject);
  });
}

/** Resolves with the first line the edge writes to a socket, or with "closed". */
function firstLine(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let buffer = "";
    socket.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8");
      const newline = buffer.indexOf("\n");
      if (newline !== -1) resolve(buffer.slice(0, newline));
    });
    socket.once("close", () => resolve("closed"));
  });
}

interface Round {
  readonly kibPerSocket: number;
  readonly rssBeforeMiB: number;
  readonly rssAfterMiB: number;
  readonly held: number;
  readonly randomJunk: string;
  readonly longLine: string;
  readonly deviceWelcomed: boolean;
}

async function round(index: number): Promise<Round> {
  const port = await freePort();
  const httpPort = await freePort();
  // A loopback range of its own per round, so ports in TIME_WAIT from the last one are not hit.
  const range = 10 + ((Math.floor(Math.random() * 60) * 4 + index) % 240);
  const address = (n: number) => `127.${range}.0.${2 + Math.floor(n / 20_000)}`;
  const child = spawn(
    process.execPath,
    ["--expose-gc", "--import", "tsx", "--import", "./bench/gc-on-signal.ts", "services/edge/main.ts"],
    {
      env: {
        ...process.env,
        TETHER_ENV: "development",
        TETHER_AUTH_MODE: "none",
        TETHER_BROKER: "memory",
        TETHER_REGISTRY: "memory",
        TETHER_DEVICE_PORT: String(port),
        TETHER_MQTT_PORT: "0",
        TETHER_WS_PORT: "0",
        TETHER_EDGE_HTTP_PORT: String(httpPort),
        TETHER_LOG_LEVEL: "warn",
        TETHER_HELLO_TIMEOUT_MS: "600000",
        TETHER_MAX_PENDING_CONNECTIONS: String(count + 1000),
        TETHER_MAX_PENDING_PER_SOURCE: String(count + 1000),
      },
      stdio: ["ignore", "inherit", "inherit"],
    },
  );
  const settledRss = async (): Promise<number> => {
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      child.kill("SIGUSR2");
    }
    await new Promise((resolve) => setTimeout(resolve, 600));
    return rssKiB(child.pid as number);
  };
  const sockets: Socket[] = [];
  try {
    await waitReady(httpPort);
    const payload = helloStart(junkBytes);
    // Warm the accept path so the baseline holds compiled code, not per-socket state.
    const warm = await Promise.all(
      Array.from({ length: 200 }, (_, i) => openSocket(port, address(count + i), payload)),
    );
    for (const socket of warm) socket.destroy();
    const before = await settledRss();
    let next = 0;
    const openUpTo = (total: number) =>
      Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < total) sockets.push(await openSocket(port, address(next++), payload));
        }),
      );
    // Read at a quarter, half, three quarters and all of them: the fitted slope over the last
    // three is what one more socket costs, without the one-off growth of the heap early on.
    const points: Array<[number, number]> = [];
    for (const share of [0.25, 0.5, 0.75, 1]) {
      await openUpTo(Math.round(count * share));
      points.push([sockets.length, await settledRss()]);
    }
    const after = (points.at(-1) as [number, number])[1];
    const readyz = (await (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).json()) as { connections: number };

    // While the junk is held: random bytes are refused at once, a longer line is cut at the
    // limit, and a device is served.
    const random = await openSocket(port, address(count + 500), Buffer.from("GET / HTTP/1.1\r\n"));
    const long = await openSocket(port, address(count + 501), helloStart(65_000));
    const device = await openSocket(port, address(count + 502), Buffer.from('{"t":"hello","v":1,"deviceId":"junk"}\n'));
    const [randomJunk, longLine, welcome] = await Promise.all([firstLine(random), firstLine(long), firstLine(device)]);
    for (const socket of [random, long, device]) socket.destroy();
    return {
      kibPerSocket: Number(slope(points.slice(1)).toFixed(2)),
      rssBeforeMiB: Math.round(before / 1024),
      rssAfterMiB: Math.round(after / 1024),
      held: readyz.connections,
      randomJunk: JSON.parse(randomJunk).code as string,
      longLine: JSON.parse(longLine).code as string,
      deviceWelcomed: welcome.startsWith('{"t":"welcome"'),
    };
  } finally {
    for (const socket of sockets) socket.destroy();
    child.kill("SIGTERM");
  }
}

/** Least-squares slope of y over x. */
function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  const mx = points.reduce((sum, [x]) => sum + x, 0) / n;
  const my = points.reduce((sum, [, y]) => sum + y, 0) / n;
  const num = points.reduce((sum, [x, y]) => sum + (x - mx) * (y - my), 0);
  const den = points.reduce((sum, [x]) => sum + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<void> {
  const results: Round[] = [];
  for (let i = 0; i < rounds; i++) results.push(await round(i));
  const sorted = results.map((r) => r.kibPerSocket).sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] as number;
  process.stdout.write(
    `${JSON.stringify({
      junkSockets: count,
      junkBytesEach: junkBytes,
      kibPerSocketMedian: median,
      kibPerSocketRounds: results.map((r) => r.kibPerSocket),
      targetKibPerSocket: 4,
      rounds: results,
    })}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exit(1);
});
