import { readFileSync } from "node:fs";
import { createServer, Socket } from "node:net";

/**
 * A port that was free a moment ago, on every interface (as the services listen). It is drawn
 * below the kernel's ephemeral range: a port the OS picks (port 0) comes from that range, where
 * any outgoing connection of another process (a Kafka client's, say) can take it before the
 * process meant to listen on it does.
 */
export async function freePort(): Promise<number> {
  const [low, high] = outsideEphemeral();
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port between ${low} and ${high}`);
}

/** Ports from 10,000 up to the ephemeral range's start (Linux: ip_local_port_range). */
function outsideEphemeral(): [number, number] {
  let start = 32_768;
  try {
    const first = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (Number.isInteger(first) && first > 11_000) start = first;
  } catch {
    // Not Linux: keep the usual start.
  }
  return [10_000, start - 1];
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen({ port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Distinct free ports; the OS could hand out one port twice across separate probes. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/**
 * Sends one Kafka Metadata request (v4, all topics) and resolves with the number of brokers in
 * the answer. A combined KRaft node lists itself only once it has registered with its
 * controller, which is when clients can use it.
 */
export function kafkaMetadataBrokers(host: string, port: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new Error("metadata request timed out")), timeoutMs);
    const finish = (error: Error | null, brokers = 0): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error === null) resolve(brokers);
      else reject(error);
    };
    socket.once("error", (error) => finish(error));
    socket.once("close", () => finish(new Error("connection closed before the metadata answer")));
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 4) return;
      const size = buffered.readInt32BE(0);
      if (buffered.length < 4 + size) return;
      // size, correlation id, throttle time, broker count
      if (size < 12) return finish(new Error("short metadata answer"));
      finish(null, buffered.readInt32BE(12));
    });
    socket.connect(port, host, () => {
      const clientId = Buffer.from("tether-harness");
      const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length + 4 + 1);
      let at = 0;
      at = body.writeInt16BE(3, at); // api key: Metadata
      at = body.writeInt16BE(4, at); // version 4: the oldest a Kafka 4 broker still serves
      at = body.writeInt32BE(1, at); // correlation id
      at = body.writeInt16BE(clientId.length, at);
      at += clientId.copy(body, at);
      at = body.writeInt32BE(-1, at); // null topic list: all topics
      body.writeInt8(0, at); // no auto-creation
      const frame = Buffer.alloc(4);
      frame.writeInt32BE(body.length, 0);
      socket.write(Buffer.concat([frame, body]));
    });
  });
}

/** Resolves once an HTTP server answers at `url` with any status. */
export async function httpAnswers(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": "DynamoDB_20120810.ListTables" },
      body: "{}",
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}
