import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type ClientFrame,
  encodeFrame,
  isValidDeviceId,
  isValidRequestId,
  isValidType,
  LineSplitter,
  type ParseResult,
  parseClientFrame,
} from "../../../shared/protocol/index.ts";
import { prng } from "../../harness/random.ts";

const TEMPLATES: readonly string[] = [
  '{"t":"hello","v":1,"deviceId":"dev-1","token":"abc"}',
  '{"t":"hello","v":1,"deviceId":"a.b:c_d-9"}',
  '{"t":"req","id":"1","type":"echo","body":{"a":[1,2,{"b":null}],"s":"é\\n"}}',
  '{"t":"req","id":"r-2","type":"x/y","body":null}',
  '{"t":"ack","id":"m-1"}',
  '{"t":"ping"}',
  '{"t":"bye"}',
  '{"t":"pong"}',
  "[1,2,3]",
  '"str"',
];
const ALPHABET = ['"', "{", "}", "[", "]", ":", ",", "\\", "t", "1", "-", " ", "\n", "\r", "\u0000", "é", "\ud800"];

function mutate(rand: () => number, text: string): Buffer {
  const bytes = Buffer.from(text, "utf8");
  const out: number[] = [...bytes];
  const edits = 1 + Math.floor(rand() * 4);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * (out.length + 1));
    const kind = rand();
    if (kind < 0.3 && out.length > 0) out.splice(at, 1);
    else if (kind < 0.55) out.splice(at, 0, Math.floor(rand() * 256));
    else if (kind < 0.8 && at < out.length) out[at] = Math.floor(rand() * 256);
    else {
      const piece = Buffer.from(ALPHABET[Math.floor(rand() * ALPHABET.length)] ?? "x", "utf8");
      out.splice(at, 0, ...piece);
    }
  }
  return Buffer.from(out);
}

function randomValue(rand: () => number, depth: number): unknown {
  const kind = Math.floor(rand() * (depth > 2 ? 5 : 7));
  switch (kind) {
    case 0:
      return null;
    case 1:
      return rand() < 0.5;
    case 2:
      return Math.floor(rand() * 2000) - 1000;
    case 3:
      return ["hello", "req", "ack", "ping", "bye", "", "1", "x".repeat(70), "dev:1"][Math.floor(rand() * 9)];
    case 4:
      return rand() * 1e6;
    case 5:
      return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth + 1));
    default: {
      const keys = ["t", "v", "id", "type", "body", "deviceId", "token", "x"];
      const value: Record<string, unknown> = {};
      for (const key of keys) if (rand() < 0.5) value[key] = randomValue(rand, depth + 1);
      return value;
    }
  }
}

function randomLine(rand: () => number): Buffer {
  const pick = rand();
  if (pick < 0.45) return mutate(rand, TEMPLATES[Math.floor(rand() * TEMPLATES.length)] ?? "{}");
  if (pick < 0.75) return Buffer.from(JSON.stringify(randomValue(rand, 0)) ?? "null", "utf8");
  if (pick < 0.9) return Buffer.from(TEMPLATES[Math.floor(rand() * TEMPLATES.length)] ?? "{}", "utf8");
  const bytes = Buffer.alloc(Math.floor(rand() * 80));
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
  return bytes;
}

/** Checks that a parse outcome is one the protocol allows, and that accepted frames are valid. */
function assertValidOutcome(result: ParseResult, line: Buffer): void {
  if (result.ok) {
    const frame: ClientFrame = result.frame;
    switch (frame.t) {
      case "hello":
        assert.equal(frame.v, 1);
        assert.ok(isValidDeviceId(frame.deviceId));
        assert.ok(frame.token === undefined || typeof frame.token === "string");
        break;
      case "req":
        assert.ok(isValidRequestId(frame.id));
        assert.ok(isValidType(frame.type));
        assert.doesNotThrow(() => JSON.parse(frame.bodyJson));
        break;
      case "ack":
        assert.ok(typeof frame.id === "string" && frame.id.length > 0);
        break;
      case "ping":
      case "bye":
        break;
      default:
        assert.fail(`unexpected frame ${JSON.stringify(frame)} from ${line.toString("hex")}`);
    }
    // An accepted frame survives encoding unchanged (a body keeps its meaning; line breaks
    // between its tokens are dropped to keep it on one line).
    const again = parseClientFrame(encodeFrame(frame).slice(0, -1));
    if (frame.t === "req" && again.ok && again.frame.t === "req") {
      assert.deepEqual(
        { ...again.frame, bodyJson: JSON.parse(again.frame.bodyJson) },
        { ...frame, bodyJson: JSON.parse(frame.bodyJson) },
      );
    } else assert.deepEqual(again, result);
    return;
  }
  assert.ok(result.code === "bad_frame" || result.code === "unknown_frame", result.code);
  assert.ok(typeof result.message === "string" && result.message.length > 0 && result.message.length < 200);
  if (result.id !== undefined) {
    assert.equal(result.code, "bad_frame");
    assert.ok(isValidRequestId(result.id));
  }
}

describe("framing and parsing under fuzzing", () => {
  it("handles 100,000 random and mutated frames, split at random points, without throwing", (t) => {
    const seed = 20_240_601;
    const rand = prng(seed);
    const maxFrameBytes = 512;
    const outcomes = { ok: 0, bad_frame: 0, unknown_frame: 0, oversize: 0 };
    let sent = 0;
    let maxHeld = 0;
    const splitter = new LineSplitter({
      maxFrameBytes,
      onLine: (line) => {
        const result = parseClientFrame(line);
        assertValidOutcome(result, line);
        if (result.ok) outcomes.ok++;
        else outcomes[result.code]++;
      },
      onOversize: () => {
        outcomes.oversize++;
      },
    });
    while (sent < 100_000) {
      // A batch of lines, sometimes with an oversize one, pushed in random-sized chunks.
      const parts: Buffer[] = [];
      const count = 1 + Math.floor(rand() * 20);
      for (let i = 0; i < count; i++) {
        parts.push(
          rand() < 0.002 ? Buffer.alloc(maxFrameBytes + 1 + Math.floor(rand() * 2000), 0x20) : randomLine(rand),
        );
        parts.push(Buffer.from(rand() < 0.2 ? "\r\n" : "\n"));
      }
      sent += count;
      const stream = Buffer.concat(parts);
      let at = 0;
      while (at < stream.length) {
        const size = rand() < 0.1 ? 1 : 1 + Math.floor(rand() * 300);
        splitter.push(stream.subarray(at, at + size));
        maxHeld = Math.max(maxHeld, splitter.pendingBytes);
        at += size;
      }
      // After an oversize line the stream is lost; a new connection starts afresh.
      if (splitter.stopped) splitter.reset();
    }
    t.diagnostic(JSON.stringify(outcomes));
    assert.ok(maxHeld <= maxFrameBytes + 1, `held ${maxHeld} bytes`);
    assert.ok(outcomes.ok > 1000, JSON.stringify(outcomes));
    assert.ok(outcomes.bad_frame > 1000, JSON.stringify(outcomes));
    assert.ok(outcomes.unknown_frame > 100, JSON.stringify(outcomes));
    assert.ok(outcomes.oversize > 10, JSON.stringify(outcomes));
  });
});
