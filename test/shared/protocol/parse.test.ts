import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isValidRequestId, parseClientFrame, parseServerFrame } from "../../../shared/protocol/index.ts";

function bad(line: string | Buffer): { code: string; message: string; id?: string } {
  const result = parseClientFrame(line);
  assert.equal(result.ok, false, `expected a failure for ${String(line)}`);
  if (result.ok) throw new Error("unreachable");
  return result;
}

describe("parseClientFrame", () => {
  it("accepts a hello with and without a token", () => {
    assert.deepEqual(parseClientFrame('{"t":"hello","v":1,"deviceId":"dev-1","token":"abc"}'), {
      ok: true,
      frame: { t: "hello", v: 1, deviceId: "dev-1", token: "abc" },
    });
    assert.deepEqual(parseClientFrame(Buffer.from('{"t":"hello","v":1,"deviceId":"a.b_c:d-E9"}')), {
      ok: true,
      frame: { t: "hello", v: 1, deviceId: "a.b_c:d-E9" },
    });
  });

  it("treats a null token as no token", () => {
    assert.deepEqual(parseClientFrame('{"t":"hello","v":1,"deviceId":"d","token":null}'), {
      ok: true,
      frame: { t: "hello", v: 1, deviceId: "d" },
    });
  });

  it("accepts req, ack, ping and bye, ignoring unknown extra fields", () => {
    assert.deepEqual(parseClientFrame('{"t":"req","id":"1","type":"a/b.c","body":{"x":[1]},"extra":true}'), {
      ok: true,
      frame: { t: "req", id: "1", type: "a/b.c", bodyJson: '{"x":[1]}' },
    });
    assert.deepEqual(parseClientFrame('{"t":"ack","id":"m-1","more":1}'), { ok: true, frame: { t: "ack", id: "m-1" } });
    assert.deepEqual(parseClientFrame('{"t":"ping","x":1}'), { ok: true, frame: { t: "ping" } });
    assert.deepEqual(parseClientFrame('{"t":"bye"}'), { ok: true, frame: { t: "bye" } });
  });

  it("accepts any JSON body, and reads a missing body as null", () => {
    for (const body of ["null", "0", '"s"', "[]", "false", '{"a":{"b":null}}']) {
      const result = parseClientFrame(`{"t":"req","id":"1","type":"echo","body":${body}}`);
      assert.ok(result.ok);
      assert.deepEqual(result.frame, { t: "req", id: "1", type: "echo", bodyJson: body });
    }
    assert.deepEqual(parseClientFrame('{"t":"req","id":"1","type":"echo"}'), {
      ok: true,
      frame: { t: "req", id: "1", type: "echo", bodyJson: "null" },
    });
  });

  it("answers bad_frame for bytes that are not UTF-8", () => {
    const r = bad(Buffer.from([0x7b, 0x22, 0x74, 0x22, 0x3a, 0xff, 0xfe, 0x7d]));
    assert.equal(r.code, "bad_frame");
    assert.match(r.message, /UTF-8/);
  });

  it("answers bad_frame for text that is not JSON", () => {
    for (const line of ["hello", "{", '{"t":"ping"', "\ufeff{}", "{'t':'ping'}", " "]) {
      const r = bad(line);
      assert.equal(r.code, "bad_frame");
      assert.match(r.message, /JSON/);
    }
  });

  it("answers bad_frame for JSON that is not an object", () => {
    for (const line of ["[]", "1", '"ping"', "null", "true", '[{"t":"ping"}]']) {
      const r = bad(line);
      assert.equal(r.code, "bad_frame");
      assert.match(r.message, /object/);
    }
  });

  it("answers bad_frame when t is missing or not a string", () => {
    for (const line of ["{}", '{"t":1}', '{"t":null}', '{"type":"ping"}', '{"t":["ping"]}']) {
      assert.equal(bad(line).code, "bad_frame");
    }
  });

  it("answers unknown_frame for an unknown t, with a short message", () => {
    const r = bad(`{"t":"${"w".repeat(500)}"}`);
    assert.equal(r.code, "unknown_frame");
    assert.ok(r.message.length < 80);
    assert.equal(bad('{"t":"welcome","id":"1"}').code, "unknown_frame");
    assert.equal(bad('{"t":"welcome","id":"1"}').id, undefined);
  });

  it("answers bad_frame for a hello with a missing or wrong version", () => {
    assert.equal(bad('{"t":"hello","deviceId":"d"}').code, "bad_frame");
    assert.equal(bad('{"t":"hello","v":"1","deviceId":"d"}').code, "bad_frame");
    const r = bad('{"t":"hello","v":2,"deviceId":"d"}');
    assert.equal(r.code, "bad_frame");
    assert.match(r.message, /unsupported protocol version 2/);
  });

  it("answers bad_frame for a hello with a bad deviceId or token", () => {
    for (const deviceId of ['""', '"a b"', '"é"', `"${"a".repeat(129)}"`, "1", "null", '"a/b"']) {
      const r = bad(`{"t":"hello","v":1,"deviceId":${deviceId}}`);
      assert.match(r.message, /deviceId/);
    }
    assert.equal(parseClientFrame(`{"t":"hello","v":1,"deviceId":"${"a".repeat(128)}"}`).ok, true);
    assert.match(bad('{"t":"hello","v":1,"deviceId":"d","token":5}').message, /token/);
  });

  it("answers bad_frame for a req with a bad id, without an id", () => {
    for (const id of ['""', "1", "null", `"${"i".repeat(65)}"`, '"\\ud800"', "{}"]) {
      const r = bad(`{"t":"req","id":${id},"type":"echo","body":null}`);
      assert.equal(r.code, "bad_frame");
      assert.equal(r.id, undefined);
      assert.match(r.message, /id/);
    }
    assert.equal(bad('{"t":"req","type":"echo","body":null}').code, "bad_frame");
  });

  it("counts request id length in characters, not UTF-16 units", () => {
    assert.equal(isValidRequestId("😀".repeat(64)), true);
    assert.equal(isValidRequestId("😀".repeat(65)), false);
    assert.equal(isValidRequestId("é".repeat(64)), true);
  });

  it("answers bad_frame for a req with a bad type, carrying the request id", () => {
    for (const type of ['""', '"a b"', "null", "3", `"${"t".repeat(129)}"`, '"ü"']) {
      const r = bad(`{"t":"req","id":"r-7","type":${type},"body":null}`);
      assert.equal(r.code, "bad_frame");
      assert.equal(r.id, "r-7");
      assert.match(r.message, /type/);
    }
    assert.equal(bad('{"t":"req","id":"r-8","body":1}').id, "r-8");
  });

  it("answers bad_frame for an ack without a string id", () => {
    for (const line of ['{"t":"ack"}', '{"t":"ack","id":""}', '{"t":"ack","id":3}']) {
      assert.equal(bad(line).code, "bad_frame");
    }
  });
});

describe("parseServerFrame", () => {
  it("accepts every edge frame", () => {
    const frames = [
      { t: "welcome", connId: "c", edgeId: "e", heartbeatMs: 30000, maxFrameBytes: 65536 },
      { t: "ack", id: "1" },
      { t: "res", id: "1", body: { a: 1 } },
      { t: "error", id: "1", code: "timeout", message: "m", retryable: true },
      { t: "error", code: "rate_limited", id: "2", retryAfterMs: 50 },
      { t: "push", id: "m", type: "cfg", body: [1] },
      { t: "pong" },
      { t: "bye", reason: "draining", reconnectMs: 1200 },
      { t: "bye", reason: "replaced" },
    ];
    for (const frame of frames) {
      assert.deepEqual(parseServerFrame(JSON.stringify({ ...frame, extra: 1 })), { ok: true, frame });
    }
  });

  it("rejects malformed edge frames and names unknown ones", () => {
    for (const line of ["x", "[]", '{"t":"res"}', '{"t":"error","id":"1"}', '{"t":"welcome","connId":"c"}']) {
      const r = parseServerFrame(line);
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.code, "bad_frame");
    }
    const r = parseServerFrame('{"t":"surprise"}');
    assert.ok(!r.ok && r.code === "unknown_frame");
  });
});

describe("answer acknowledgements in hello and welcome (protocol 1.1)", () => {
  it("keeps a hello's ackAnswers only when it is the literal true", () => {
    assert.deepEqual(parseClientFrame('{"t":"hello","v":1,"deviceId":"d","token":"k","ackAnswers":true}'), {
      ok: true,
      frame: { t: "hello", v: 1, deviceId: "d", token: "k", ackAnswers: true },
    });
    assert.deepEqual(parseClientFrame('{"t":"hello","v":1,"deviceId":"d","ackAnswers":true}'), {
      ok: true,
      frame: { t: "hello", v: 1, deviceId: "d", ackAnswers: true },
    });
    for (const value of ["false", '"true"', "1", "null", "{}", "[true]"]) {
      assert.deepEqual(parseClientFrame(`{"t":"hello","v":1,"deviceId":"d","ackAnswers":${value}}`), {
        ok: true,
        frame: { t: "hello", v: 1, deviceId: "d" },
      });
    }
  });

  it("keeps a welcome's ackAnswers when true and drops anything else", () => {
    const base = { t: "welcome", connId: "c", edgeId: "e", heartbeatMs: 30000, maxFrameBytes: 65536 } as const;
    assert.deepEqual(parseServerFrame(JSON.stringify({ ...base, ackAnswers: true })), {
      ok: true,
      frame: { ...base, ackAnswers: true },
    });
    for (const ackAnswers of [false, "true", 1, null]) {
      assert.deepEqual(parseServerFrame(JSON.stringify({ ...base, ackAnswers })), { ok: true, frame: base });
    }
  });
});
