import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  encodeAck,
  encodeBye,
  encodeError,
  encodeFrame,
  encodePush,
  encodeReq,
  encodeRes,
  encodeWelcome,
  PONG_LINE,
  parseClientFrame,
  parseServerFrame,
} from "../../../shared/protocol/index.ts";

function decodeLine(line: string): unknown {
  assert.ok(line.endsWith("\n"));
  assert.equal(line.indexOf("\n"), line.length - 1, "exactly one newline, at the end");
  return JSON.parse(line);
}

describe("frame encoding", () => {
  it("encodes any frame as one JSON line", () => {
    assert.equal(encodeFrame({ t: "pong" }), '{"t":"pong"}\n');
    assert.deepEqual(decodeLine(encodeFrame({ t: "res", id: "a\nb", body: "x\ny" })), {
      t: "res",
      id: "a\nb",
      body: "x\ny",
    });
  });

  it("builds hot frames that decode to what encodeFrame would give", () => {
    assert.deepEqual(decodeLine(encodeAck('q"1')), { t: "ack", id: 'q"1' });
    assert.deepEqual(decodeLine(encodeRes("1", '{"a":[1,2]}')), { t: "res", id: "1", body: { a: [1, 2] } });
    assert.deepEqual(decodeLine(encodePush("m", "cfg", "null")), { t: "push", id: "m", type: "cfg", body: null });
    assert.deepEqual(decodeLine(encodeReq("r", "echo", "[]")), { t: "req", id: "r", type: "echo", body: [] });
    assert.deepEqual(decodeLine(encodeError({ code: "bad_frame", message: "m" })), {
      t: "error",
      code: "bad_frame",
      message: "m",
    });
    assert.deepEqual(decodeLine(encodeError({ id: "1", code: "rate_limited", retryAfterMs: 12.4, retryable: true })), {
      t: "error",
      id: "1",
      code: "rate_limited",
      retryable: true,
      retryAfterMs: 12,
    });
    assert.deepEqual(decodeLine(encodeBye("draining", 1500)), { t: "bye", reason: "draining", reconnectMs: 1500 });
    assert.deepEqual(decodeLine(encodeBye("kicked")), { t: "bye", reason: "kicked" });
    const welcome = { connId: "c1", edgeId: "e1", heartbeatMs: 30000, maxFrameBytes: 65536 };
    assert.deepEqual(decodeLine(encodeWelcome(welcome)), { t: "welcome", ...welcome });
    assert.equal(PONG_LINE, encodeFrame({ t: "pong" }));
  });

  it("keeps a pretty-printed JSON body on one line", () => {
    const body = JSON.stringify({ a: "x", b: [1, { c: null }] }, null, 2).replace(/\n/g, "\r\n");
    const line = encodeRes("1", body);
    assert.deepEqual(decodeLine(line), { t: "res", id: "1", body: { a: "x", b: [1, { c: null }] } });
    assert.deepEqual(decodeLine(encodeRes("1", "")), { t: "res", id: "1", body: null });
  });

  it("round-trips through the parsers", () => {
    const req = encodeReq("id-1", "echo", '{"n":1}');
    assert.deepEqual(parseClientFrame(req.slice(0, -1)), {
      ok: true,
      frame: { t: "req", id: "id-1", type: "echo", bodyJson: '{"n":1}' },
    });
    assert.deepEqual(parseServerFrame(encodeRes("id-1", '"ok"').slice(0, -1)), {
      ok: true,
      frame: { t: "res", id: "id-1", body: "ok" },
    });
  });
});

describe("welcome with answer acknowledgements (protocol 1.1)", () => {
  const fields = { connId: "c1", edgeId: "e1", heartbeatMs: 30000, maxFrameBytes: 65536 };

  it("carries ackAnswers only when the edge agreed", () => {
    assert.deepEqual(decodeLine(encodeWelcome({ ...fields, ackAnswers: true })), {
      t: "welcome",
      ...fields,
      ackAnswers: true,
    });
    assert.equal(encodeWelcome({ ...fields, ackAnswers: false }), encodeWelcome(fields));
    assert.equal(encodeWelcome(fields).includes("ackAnswers"), false);
  });

  it("round-trips through parseServerFrame", () => {
    assert.deepEqual(parseServerFrame(encodeWelcome({ ...fields, ackAnswers: true }).trimEnd()), {
      ok: true,
      frame: { t: "welcome", ...fields, ackAnswers: true },
    });
  });

  it("encodes a hello asking for them so that parseClientFrame keeps the flag", () => {
    const line = encodeFrame({ t: "hello", v: 1, deviceId: "d", ackAnswers: true });
    assert.deepEqual(parseClientFrame(line.trimEnd()), {
      ok: true,
      frame: { t: "hello", v: 1, deviceId: "d", ackAnswers: true },
    });
  });
});
