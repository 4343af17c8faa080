import { createServer, Socket } from "node:net";

/** A port that was free a moment ago on 127.0.0.1 (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no port assigned"))));
    });
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
