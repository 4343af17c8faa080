/**
 * 100,000 random and mutated frames against one edge (in-memory adapters), cut into random
 * segments: the edge must not crash, memory must stay bounded, every line it writes must be a
 * valid server frame, and it must still serve a well-behaved device afterwards.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { parseServerFrame } from "../../../shared/protocol/index.ts";
import { prng } from "../../harness/random.ts";
import { Device, EchoWorker, memoryFleet, startEdge } from "./helpers.ts";

const TOTAL_FRAMES = 100_000;
const DEVICES = 16;
const RSS_BOUND_MB = 256;

const seed = Number(process.env.TETHER_FUZZ_SEED ?? Date.now() % 1_000_000);
const random = prng(seed);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const int = (n: number) => Math.floor(random() * n);

const ALPHABET = '{}[]":,tidbody\\u0000\u00e9\u{1F600}0123456789 -.eE+truefalsenull\r';

function randomJsonValue(depth = 0): unknown {
  switch (int(depth > 3 ? 5 : 8)) {
    case 0:
      return null;
    case 1:
      return random() < 0.5;
    case 2:
      return pick([0, -1, 1e308, -0, 3.14, 2 ** 53 + 1]);
    case 3:
      return "x".repeat(int(40));
    case 4:
      return pick(["", "\u0000", "\ud800", "é", "😀", "\\n", "\n"]);
    case 5:
      return Array.from({ length: int(4) }, () => randomJsonValue(depth + 1));
    default: {
      const object: Record<string, unknown> = {};
      for (let i = 0; i < int(4); i++)
        object[pick(["t", "id", "type", "body", "v", "deviceId", "x"])] = randomJsonValue(depth + 1);
      return object;
    }
  }
}

function validFrame(n: number): string {
  switch (int(6)) {
    case 0:
      return JSON.stringify({ t: "ping" });
    case 1:
      return JSON.stringify({ t: "ack", id: `m${int(10)}` });
    case 2:
      return JSON.stringify({ t: "hello", v: 1, deviceId: `fz-${int(50)}` });
    default:
      return JSON.stringify({
        t: "req",
        id: `f${n}`,
        type: pick(["echo", "echo", "none", "a/b"]),
        body: randomJsonValue(),
      });
  }
}

function mutate(text: string): string {
  const chars = [...text];
  for (let i = 0, n = 1 + int(4); i < n; i++) {
    const at = int(chars.length + 1);
    switch (int(5)) {
      case 0:
        chars.splice(at, 1);
        break;
      case 1:
        chars.splice(at, 0, pick([...ALPHABET]));
        break;
      case 2:
        chars[at] = pick([...ALPHABET]);
        break;
      case 3:
        chars.length = at;
        break;
      default:
        chars.splice(at, 0, ...chars.slice(int(chars.length), int(chars.length)));
    }
  }
  return chars.join("").replaceAll("\n", "");
}

/** Lines an attacker writes on purpose: deep nesting, huge numbers, long strings, bad UTF-8, prototype keys. */
function hostileLine(n: number): Buffer {
  const id = JSON.stringify(`h${n}`);
  switch (int(6)) {
    case 0: {
      const depth = pick([63, 64, 65, 100, 300]);
      const open = pick(["[", '{"a":']);
      const close = open === "[" ? "]" : "}";
      const body = `${open.repeat(depth)}1${close.repeat(depth)}`;
      return Buffer.from(
        random() < 0.8
          ? `{"t":"req","id":${id},"type":"echo","body":${body}}`
          : `{"t":"hello","v":1,"deviceId":"fz-deep","token":${body}}`,
      );
    }
    case 1: {
      const number = pick(["1e999999", "-1e-999999", "9".repeat(400), `0.${"0".repeat(300)}1`, "-0", "1E+308"]);
      return Buffer.from(`{"t":"req","id":${id},"type":"echo","body":{"n":${number},"m":[${number}]}}`);
    }
    case 2:
      return Buffer.from(`{"t":"req","id":${id},"type":"echo","body":"${"s".repeat(int(1900))}"}`);
    case 3: {
      const bad = pick([
        [0xc3, 0x28],
        [0xc0, 0xaf],
        [0xed, 0xa0, 0x80],
        [0xf4, 0x90, 0x80, 0x80],
        [0xff],
        [0xe2, 0x82],
      ]);
      return Buffer.concat([
        Buffer.from(`{"t":"req","id":${id},"type":"echo","body":"`),
        Buffer.from(bad),
        Buffer.from('"}'),
      ]);
    }
    case 4:
      return Buffer.from(
        pick([
          `{"t":"req","id":${id},"type":"echo","body":{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}}}}`,
          `{"__proto__":{"t":"req"},"t":"ping"}`,
          `{"t":"req","__proto__":{"id":"x","type":"echo"}}`,
          `{"t":"hello","v":1,"deviceId":"__proto__"}`,
          `{"t":"req","id":"__proto__","type":"constructor","body":null}`,
        ]),
      );
    default:
      // Just under the fuzz run's 2 KiB frame limit, so it is parsed (and refused), not cut.
      return Buffer.from(`{"t":"req","id":${id},"type":"echo","body":${"[".repeat(995)}${"]".repeat(995)}}`);
  }
}

function randomLine(n: number): Buffer {
  if (random() < 0.05) return hostileLine(n);
  const kind = random();
  if (kind < 0.45) return Buffer.from(validFrame(n));
  if (kind < 0.8) return Buffer.from(mutate(validFrame(n)));
  if (kind < 0.9) return Buffer.from(JSON.stringify(randomJsonValue()) ?? "");
  if (kind < 0.998) {
    const bytes = Buffer.alloc(int(120));
    for (let i = 0; i < bytes.length; i++) bytes[i] = int(256) === 10 ? 32 : int(256);
    return Buffer.from(bytes.map((b) => (b === 10 ? 32 : b)));
  }
  return Buffer.from("y".repeat(3000));
}

const SERVER_TYPES = new Set(["welcome", "ack", "res", "error", "push", "pong", "bye"]);

it(`survives ${TOTAL_FRAMES} random and mutated frames and only ever writes valid frames`, async (t) => {
  const fleet = await memoryFleet();
  const worker = new EchoWorker(fleet.broker, fleet.common.names);
  await worker.start();
  const { edge, port } = await startEdge(fleet, {
    limits: { rateLimit: 1_000_000, maxInflight: 100_000, maxFrameBytes: 2048, helloTimeoutMs: 2000 },
  });
  t.after(async () => {
    await edge.close();
    await worker.close();
  });
  const rssBefore = process.memoryUsage().rss;
  let sent = 0;
  let received = 0;
  let connections = 0;
  const invalid: string[] = [];

  const check = (device: Device) => {
    for (const line of device.invalid) invalid.push(line);
    for (const frame of device.frames) {
      received += 1;
      const parsed = parseServerFrame(JSON.stringify(frame));
      if (!parsed.ok || !SERVER_TYPES.has(frame.t)) invalid.push(JSON.stringify(frame));
    }
  };

  const run = async (index: number) => {
    while (sent < TOTAL_FRAMES) {
      const device = await Device.connect(port);
      connections += 1;
      try {
        if (random() < 0.95) {
          const answer = await device.hello(random() < 0.2 ? `fz-${int(50)}` : `fz-own-${index}`);
          if (answer.t !== "welcome") continue;
        }
        while (!device.closed && sent < TOTAL_FRAMES) {
          const lines: Buffer[] = [];
          for (let i = 0, n = 50 + int(150); i < n; i++) {
            lines.push(randomLine(sent + i), Buffer.from(random() < 0.1 ? "\r\n" : "\n"));
          }
          sent += lines.length / 2;
          const bytes = Buffer.concat(lines);
          // Random segment boundaries, from single bytes to the whole batch.
          let at = 0;
          while (at < bytes.length) {
            const size = random() < 0.1 ? 1 + int(4) : 1 + int(bytes.length);
            device.socket.write(bytes.subarray(at, at + size));
            at += size;
          }
          device.send('{"t":"ping"}\n');
          await Promise.race([device.closedPromise, new Promise((resolve) => setTimeout(resolve, 20))]);
        }
      } finally {
        await new Promise((resolve) => setTimeout(resolve, 50));
        check(device);
        device.close();
      }
    }
  };
  await Promise.all(Array.from({ length: DEVICES }, (_, i) => run(i)));

  assert.deepEqual(invalid.slice(0, 5), [], `seed ${seed}: invalid lines from the edge`);
  assert.ok(received > TOTAL_FRAMES / 4, `seed ${seed}: only ${received} frames came back`);
  const growthMb = (process.memoryUsage().rss - rssBefore) / 1024 / 1024;
  // Bound: the test process holds the edge, 16 devices and their collected frames.
  assert.ok(growthMb < RSS_BOUND_MB, `seed ${seed}: RSS grew ${growthMb.toFixed(0)} MB (bound ${RSS_BOUND_MB} MB)`);
  assert.equal(({} as Record<string, unknown>).polluted, undefined, "no prototype was polluted");
  t.diagnostic(
    `seed ${seed}: sent ${sent} frames over ${connections} connections, got ${received} frames back, RSS +${growthMb.toFixed(0)} MB`,
  );

  // Still serving.
  const device = await Device.connect(port);
  t.after(() => device.close());
  assert.equal((await device.hello("fz-final")).t, "welcome");
  device.send({ t: "req", id: "last", type: "echo", body: { ok: true } });
  // Its answer queues behind the fuzz's own requests (tens of thousands): allow for the backlog.
  assert.deepEqual(await device.nextOfType("res", 30_000), { t: "res", id: "last", body: { ok: true } });
  assert.equal(edge.status, "running");
});
