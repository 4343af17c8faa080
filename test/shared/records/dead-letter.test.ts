import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  deadLetterRecord,
  decodeDeadLetter,
  describeFailure,
  Header,
  type RequestRecord,
} from "../../../shared/records/index.ts";
import { raw, received } from "./helpers.ts";

const headers = {
  [Header.ReplySlot]: "2",
  [Header.ReplyEdge]: "edge-a",
  [Header.ReplyConn]: "conn-1",
  [Header.Device]: "dev-1",
  [Header.RequestId]: "r1",
};
const original = raw('{"deviceId":"dev-1","id":"r1","type":"t","body":1,"receivedAt":5}', headers, "dev-1");
const request: RequestRecord = { deviceId: "dev-1", id: "r1", type: "t", body: 1, receivedAt: 5 };

describe("dead letter records", () => {
  it("decode to the letter they were encoded from", () => {
    const error = new Error("backend down");
    const message = deadLetterRecord("requests.dlq", { message: original, request, error, attempts: 3, failedAt: 99 });
    const decoded = decodeDeadLetter(received(message));
    assert.deepEqual(decoded, {
      ok: true,
      value: {
        error: describeFailure(error),
        attempts: 3,
        request,
        headers,
        source: { topic: "t", partition: 0, offset: "7" },
        failedAt: 99,
      },
    });
  });

  it("keep the request's key and headers on the record itself", () => {
    const message = deadLetterRecord("requests.dlq", {
      message: original,
      request,
      error: "x",
      attempts: 1,
      failedAt: 1,
    });
    assert.equal(message.topic, "requests.dlq");
    assert.equal(message.key, "dev-1");
    assert.deepEqual(message.headers, headers);
  });

  it("of a request that could not be read keep its value as text", () => {
    const unreadable = raw("not json", {}, "dev-1");
    const message = deadLetterRecord("dlq", { message: unreadable, request: null, error: 7, attempts: 0, failedAt: 1 });
    const decoded = decodeDeadLetter(received(message));
    assert.ok(decoded.ok);
    assert.equal(decoded.value.request, null);
    assert.equal(decoded.value.rawValue, "not json");
    assert.deepEqual(decoded.value.error, { name: "number", message: "7" });
  });

  it("are refused with a reason when the value is not a letter", () => {
    const valid = {
      error: { name: "Error", message: "m" },
      attempts: 1,
      request: null,
      rawValue: "x",
      headers: {},
      source: { topic: "t", partition: 0, offset: "1" },
      failedAt: 1,
    };
    const cases: Array<[string, RegExp]> = [
      ["{{", /not JSON/],
      ["[]", /not a JSON object/],
      [JSON.stringify({ ...valid, error: "boom" }), /no valid error/],
      [JSON.stringify({ ...valid, error: { name: "E", message: "m", stack: 1 } }), /no valid error/],
      [JSON.stringify({ ...valid, attempts: -1 }), /no valid attempts/],
      [JSON.stringify({ ...valid, request: [1] }), /request is neither/],
      [JSON.stringify({ ...valid, rawValue: 5 }), /rawValue is not a string/],
      [JSON.stringify({ ...valid, headers: { a: 1 } }), /headers are not strings/],
      [JSON.stringify({ ...valid, source: { topic: "t", partition: "0", offset: "1" } }), /no valid source/],
      [JSON.stringify({ ...valid, failedAt: null }), /no valid failedAt/],
    ];
    for (const [value, reason] of cases) {
      const decoded = decodeDeadLetter(raw(value));
      assert.ok(!decoded.ok, value);
      assert.match(decoded.reason, reason, value);
    }
  });
});

describe("failure descriptions", () => {
  it("keep an error's name, message and stack, cut to a few kilobytes", () => {
    const error = new TypeError("bad");
    error.stack = "s".repeat(10_000);
    const described = describeFailure(error);
    assert.equal(described.name, "TypeError");
    assert.equal(described.message, "bad");
    assert.equal(described.stack?.length, 4096);
  });

  it("describe a thrown value that is not an error by its type and text", () => {
    assert.deepEqual(describeFailure("text"), { name: "string", message: "text" });
    assert.deepEqual(describeFailure({ a: 1 }), { name: "object", message: '{"a":1}' });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    assert.deepEqual(describeFailure(circular), { name: "object", message: "[object Object]" });
  });
});
