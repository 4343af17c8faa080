/**
 * Idle connection cost: starts one edge process (in-memory adapters unless the environment
 * says otherwise), opens N device connections that say hello and then stay silent, and reports
 * the edge's resident memory per connection and the connect rate.
 *
 *   tsx bench/edge-idle.ts [connections=15000]
 *
 * One process may hold at most `ulimit -n` sockets; the client side binds 127.0.0.2, .3, ...
 * so that one loopback address's ~28,000 client ports are not the limit.
 *
 * With TETHER_REGISTRY=dynamodb it first measures, for scale, how many ownership claims per
 * second the store itself takes from this process (the edge's own write, 64 at a time, after a
 * warm-up round): the edge's connect rate cannot exceed it.
 */
import { spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { ConfigReader, readCommonConfig } from "../shared/config/index.ts";
import { silentLogger } from "../shared/log/index.ts";
import { createRegistry } from "../shared/registry/index.ts";
import { freePort, rssKiB, waitReady } from "./process.ts";

const count = Number(process.argv[2] ?? 15_000);
const concurrency = 100;

function openDevice(port: number, index: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const localAddress = `127.0.0.${2 + Math.floor(index / 20_000)}`;
    const socket = connect({ port, host: "127.0.0.1", localAddress }, () => {
      socket.write(`{"t":"hello","v":1,"deviceId":"idle-${index}"}\n`);
    });
    let buffer = "";
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString("utf8");
      if (buffer.includes("\n")) {
        socket.off("data", onData);
        if (buffer.startsWith('{"t":"welcome"')) resolve(socket);
        else reject(new Error(buffer));
      }
    };
    socket.on("data", onData);
    socket.once("error", reject);
  });
}

/** Ownership claims per second the registry takes at `concurrency`, measured after a warm-up. */
async function storeClaimRate(concurrency: number): Promise<number> {
  const env = { TETHER_ENV: "development", ...process.env };
  const registry = await createRegistry(readCommonConfig(new ConfigReader(env), "tether-bench"), silentLogger());
  let rate = 0;
  try {
    for (const round of ["warm-up", "measured"]) {
      let claims = 0;
      const started = performance.now();
      const end = started + 5000;
      await Promise.all(
        Array.from({ length: concurrency }, async (_, worker) => {
          while (performance.now() < end) {
            const n = claims++;
            await registry.connections.claim({
              deviceId: `store-${round}-${worker}-${n}`,
              edgeId: "bench",
              slot: 0,
              connId: `c${n}`,
              connectedAt: Date.now(),
            });
          }
        }),
      );
      rate = Math.round(claims / ((performance.now() - started) / 1000));
    }
  } finally {
    await registry.close();
  }
  return rate;
}

async function main(): Promise<void> {
  const port = await freePort();
  const httpPort = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", "services/edge/main.ts"], {
    env: {
      ...process.env,
      TETHER_ENV: "development",
      TETHER_AUTH_MODE: process.env.TETHER_AUTH_MODE ?? "none",
      TETHER_BROKER: process.env.TETHER_BROKER ?? "memory",
      TETHER_REGISTRY: process.env.TETHER_REGISTRY ?? "memory",
      TETHER_DEVICE_PORT: String(port),
      TETHER_MQTT_PORT: "0",
      TETHER_WS_PORT: "0",
      TETHER_EDGE_HTTP_PORT: String(httpPort),
      TETHER_LOG_LEVEL: "warn",
      TETHER_HEARTBEAT_MS: "600000",
      TETHER_HELLO_TIMEOUT_MS: "60000",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  try {
    await waitReady(httpPort);
    // The edge made the tables; the store's own rate first, for scale.
    const storeClaimsPerSec = process.env.TETHER_REGISTRY === "dynamodb" ? await storeClaimRate(64) : undefined;
    // Warm up code paths so that the baseline holds compiled code, not per-connection state.
    const warm: Socket[] = [];
    for (let i = 0; i < 200; i++) warm.push(await openDevice(port, count + i));
    for (const socket of warm) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const before = rssKiB(child.pid!);
    const sockets: Socket[] = [];
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < count) {
          const index = next++;
          sockets.push(await openDevice(port, index));
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const after = rssKiB(child.pid!);
    const perConn = ((after - before) * 1024) / count;
    process.stdout.write(
      `${JSON.stringify({
        connections: sockets.length,
        connectPerSec: Math.round(count / seconds),
        rssBeforeMiB: Math.round(before / 1024),
        rssAfterMiB: Math.round(after / 1024),
        bytesPerConnection: Math.round(perConn),
        registry: process.env.TETHER_REGISTRY ?? "memory",
        storeClaimsPerSec,
      })}\n`,
    );
    for (const socket of sockets) socket.destroy();
  } finally {
    child.kill("SIGTERM");
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exit(1);
});
