import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { connect } from "node:tls";
import { Device, EchoWorker, memoryFleet, startEdge } from "./helpers.ts";

it("terminates TLS itself when given a certificate and key", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "edge-tls-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-keyout",
      keyFile,
      "-out",
      certFile,
    ],
    { stdio: "ignore" },
  );

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
