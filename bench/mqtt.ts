/**
 * MQTT devices: an edge process and a worker process on the environment's adapters (Kafka and
 * DynamoDB from `npm run bench -- mqtt`), or with BENCH_EMBEDDED=1 the embedded mode.
 *
 *   tsx bench/mqtt.ts [rate=1000] [devices=100] [seconds=15] [idle=5000]
 *
 * 1. Round trips at `rate` requests/s spread over `devices` mqtt.js clients (MQTT 5, QoS 1,
 *    correlation data): PUBACK latency (the durable write) and answer latency, percentiles.
 * 2. `idle` MQTT 5 connections that CONNECT and stay silent (raw sockets, packets from
 *    mqtt-packet): the edge's resident memory per connection.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import * as hdr from "hdr-histogram-js";
import { MqttClient } from "mqtt";
import { generate } from "mqtt-packet";
import { freePort, rssKiB, waitReady } from "./process.ts";

const [rateArg = "1000", devicesArg = "100", secondsArg = "15", idleArg = "5000"] = process.argv.slice(2);
const rate = Number(rateArg);
const devices = Number(devicesArg);
const seconds = Number(secondsArg);
const idle = Number(idleArg);
const warmupSeconds = Number(process.env.BENCH_WARMUP_S ?? 10);

interface Services {
  readonly edgePid: number;
  readonly mqttPort: number;
  close(): Promise<void>;
}

async function startServices(): Promise<Services> {
  const mqttPort = await freePort();
  const edgeHttp = await freePort();
  const workerHttp = await freePort();
  const env = {
    ...process.env,
    TETHER_ENV: "development",
    TETHER_AUTH_MODE: "none",
    TETHER_LOG_LEVEL: "warn",
    TETHER_DEVICE_PORT: "0",
    TETHER_MQTT_PORT: String(mqttPort),
    TETHER_WS_PORT: "0",
    TETHER_EDGE_HTTP_PORT: String(edgeHttp),
    TETHER_WORKER_HTTP_PORT: String(workerHttp),
    TETHER_ADMIN_PORT: "0",
    // Idle connections stay: no keep-alive from them, so the edge's own idle bound must be long.
    TETHER_HEARTBEAT_MS: "600000",
    TETHER_HELLO_TIMEOUT_MS: "60000",
    TETHER_MAX_PENDING_PER_SOURCE: "100000",
  };
  const children: ChildProcess[] = [];
  // BENCH_EMBEDDED=1: the embedded mode (npm start, in-memory broker and registry) instead.
  const scripts =
    process.env.BENCH_EMBEDDED === "1"
      ? ([["services/embedded/main.ts", edgeHttp]] as const)
      : ([
          ["services/edge/main.ts", edgeHttp],
          ["services/worker/main.ts", workerHttp],
        ] as const);
  for (const [script, http] of scripts) {
    const child = spawn(process.execPath, ["--import", "tsx", script], {
      env,
      stdio: ["ignore", "inherit", "inherit"],
    });
    children.push(child);
    await waitReady(http, 60_000);
  }
  const edgePid = children[0]?.pid;
  if (edgePid === undefined) throw new Error("edge did not start");
  return {
    edgePid,
    mqttPort,
    async close() {
      for (const child of children) child.kill("SIGTERM");
      await Promise.all(children.map((child) => new Promise((resolve) => child.once("exit", resolve))));
    },
  };
}

function histogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
}

async function roundTrips(port: number): Promise<Record<string, unknown>> {
  const answers = histogram();
  const acks = histogram();
  let measuring = false;
  let completed = 0;
  let sent = 0;
  const clients: Array<{ client: MqttClient; sentAt: Map<string, number> }> = [];
  for (let index = 0; index < devices; index++) {
    // mqtt.js writes a packet in several writes and leaves Nagle on: with the receiver's delayed
    // ACK that adds 40 ms to a round trip. Its sockets here are made with TCP_NODELAY, as a
    // device's MQTT stack would do.
    const client = new MqttClient(() => connect({ port, host: "127.0.0.1", noDelay: true }), {
      clientId: `bench-mqtt-${index}`,
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
    });
    const sentAt = new Map<string, number>();
    client.on("message", (_topic, _payload, packet) => {
      const id = Buffer.from(packet.properties?.correlationData ?? []).toString();
      const at = sentAt.get(id);
      if (at === undefined) return;
      sentAt.delete(id);
      if (!measuring) return;
      answers.recordValue(Math.max(1, Math.round((performance.now() - at) * 1000)));
      completed += 1;
    });
    await client.subscribeAsync(`tether/res/${index}`, { qos: 1 });
    clients.push({ client, sentAt });
  }
  let turn = 0;
  const send = () => {
    const target = clients[turn++ % clients.length];
    if (target === undefined) return;
    const id = String(sent++);
    const at = performance.now();
    target.sentAt.set(id, at);
    const index = (turn - 1) % clients.length;
    target.client.publish(
      "tether/req/echo",
      `{"n":${id},"pad":"0123456789abcdef"}`,
      { qos: 1, properties: { responseTopic: `tether/res/${index}`, correlationData: Buffer.from(id) } },
      (error) => {
        if (!error && measuring) acks.recordValue(Math.max(1, Math.round((performance.now() - at) * 1000)));
      },
    );
  };
  const perTick = rate / 100;
  let owed = 0;
  const ticker = setInterval(() => {
    owed += perTick;
    while (owed >= 1) {
      owed -= 1;
      send();
    }
  }, 10);
  await new Promise((resolve) => setTimeout(resolve, warmupSeconds * 1000));
  measuring = true;
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  measuring = false;
  const elapsed = (performance.now() - started) / 1000;
  clearInterval(ticker);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await Promise.all(clients.map(({ client }) => client.endAsync(true)));
  const ms = (p: number, h: hdr.Histogram) => Number((h.getValueAtPercentile(p) / 1000).toFixed(2));
  return {
    devices,
    rate,
    roundTripsPerSec: Math.round(completed / elapsed),
    pubackP50ms: ms(50, acks),
    pubackP99ms: ms(99, acks),
    answerP50ms: ms(50, answers),
    answerP99ms: ms(99, answers),
    answerMaxMs: ms(100, answers),
  };
}

function openIdle(port: number, index: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const localAddress = `127.0.0.${2 + Math.floor(index / 20_000)}`;
    const socket = connect({ port, host: "127.0.0.1", localAddress }, () => {
      socket.write(
        generate({
          cmd: "connect",
          protocolId: "MQTT",
          protocolVersion: 5,
          clean: true,
          clientId: `idle-mqtt-${index}`,
          keepalive: 0,
        }),
      );
    });
    socket.once("data", (chunk: Buffer) => {
      // CONNACK: type 2, reason code (the 4th byte for a short CONNACK) 0.
      if (chunk[0] === 0x20 && chunk[3] === 0) resolve(socket);
      else reject(new Error(`CONNACK refused: ${chunk.toString("hex")}`));
    });
    socket.once("error", reject);
  });
}

async function idleMemory(port: number, edgePid: number): Promise<Record<string, unknown>> {
  const warm: Socket[] = [];
  for (let index = 0; index < 200; index++) warm.push(await openIdle(port, idle + index));
  for (const socket of warm) socket.destroy();
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const before = rssKiB(edgePid);
  const sockets: Socket[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 100 }, async () => {
      while (next < idle) sockets.push(await openIdle(port, next++));
    }),
  );
  const connectSeconds = (performance.now() - started) / 1000;
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const after = rssKiB(edgePid);
  for (const socket of sockets) socket.destroy();
  return {
    idleConnections: sockets.length,
    connectPerSec: Math.round(idle / connectSeconds),
    rssBeforeMiB: Math.round(before / 1024),
    rssAfterMiB: Math.round(after / 1024),
    bytesPerIdleConnection: Math.round(((after - before) * 1024) / idle),
  };
}

async function main(): Promise<void> {
  const services = await startServices();
  try {
    const trips = await roundTrips(services.mqttPort);
    const memory = await idleMemory(services.mqttPort, services.edgePid);
    process.stdout.write(
      `${JSON.stringify({
        mode: process.env.BENCH_EMBEDDED === "1" ? "embedded" : "edge and worker processes",
        broker: process.env.BENCH_EMBEDDED === "1" ? "memory" : (process.env.TETHER_BROKER ?? "memory"),
        registry: process.env.TETHER_REGISTRY ?? "memory",
        ...trips,
        ...memory,
      })}\n`,
    );
  } finally {
    await services.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exit(1);
});
