import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { it } from "node:test";
import { connect } from "node:tls";
import { selfSignedCert } from "../../harness/tls.ts";
import { Device, EchoWorker, memoryFleet, startEdge } from "./helpers.ts";

it("terminates TLS itself when given a certificate and key", async (t) => {
  const { certFile, keyFile } = selfSignedCert(t);

  const fleet = await memoryFleet();
  const worker = new EchoWorker(fleet.broker, fleet.common.names);
  await worker.start();
  const { edge, port } = await startEdge(fleet, { tls: { certFile, keyFile } });
  t.after(async () => {
    await edge.close();
    await worker.close();
  });

  const socket = connect({ port, host: "127.0.0.1", ca: readFileSync(certFile), servername: "localhost" });
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", resolve);
    socket.once("error", reject);
  });
  const device = new Device(socket);
  t.after(() => device.close());
  assert.equal((await device.hello("tls-device")).t, "welcome");
  device.send({ t: "req", id: "1", type: "echo", body: "over tls" });
  assert.deepEqual(await device.nextOfType("res"), { t: "res", id: "1", body: "over tls" });

  // Plain TCP to the TLS port gets nowhere near the protocol.
  const plain = await Device.connect(port);
  t.after(() => plain.close());
  plain.send({ t: "hello", v: 1, deviceId: "plain" });
  await plain.waitClosed(5000);
  assert.equal(plain.frames.length, 0);
});
