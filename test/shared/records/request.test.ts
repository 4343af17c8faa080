import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeRequest, Header, type ReplyRoute, requestRecord } from "../../../shared/records/index.ts";
import { raw, received } from "./helpers.ts";

const route: ReplyRoute = { slot: 3, edgeId: "edge-a", connId: "conn-9" };
const request = { deviceId: "pump-1", id: "r1", type: "reading.put", receivedAt: 1_700_000_000_123 };

function routeHeaders(): Record<string, string> {
  return { [Header.ReplySlot]: "3", [Header.ReplyEdge]: "edge-a", [Header.ReplyConn]: "conn-9" };
}

describe("request records", () => {
  it("decode to the request and reply route they were encoded from", () => {
    const message = requestRecord("requests", route, request, '{"celsius":21.5,"tags":["a"]}');
    const decoded = decodeRequest(received(message));
    assert.deepEqual(decoded, {
      ok: true,
      value: { request: { ...request, body: { celsius: 21.5, tags: ["a"] } }, route },
    });
  });

  it("carry only the reply route as headers, keyed by the device", () => {
    const message = requestRecord("requests", route, request, "null");
    assert.equal(message.topic, "requests");
    assert.equal(message.key, "pump-1");
    assert.equal(message.partition, undefined, "partitioned by key");
    assert.deepEqual(message.headers, routeHeaders());
  });

  it("keep the device's body text byte for byte", () => {
    const body = '{ "b" :1,"a":[1.50, 2e3, "\\u00e9"], "z": {} }';
    const message = requestRecord("requests", route, request, body);
    const value = String(message.value);
    assert.ok(value.endsWith(`"body":${body}}`), value);
    assert.equal(value.indexOf(body), value.length - body.length - 1);
  });

  it("read a missing body as null and a missing receipt time as the broker's timestamp", () => {
    const decoded = decodeRequest(raw('{"deviceId":"d","id":"r","type":"t"}', routeHeaders()));
    assert.ok(decoded.ok);
    assert.equal(decoded.value.request.body, null);
    assert.equal(decoded.value.request.receivedAt, 1_700_000_000_000);
  });

  it("are refused with a reason when the value is not a request", () => {
    const cases: Array<[string, RegExp]> = [
      ["not json", /not JSON/],
      ["[1]", /not a JSON object/],
      ["null", /not a JSON object/],
      ['{"id":"r","type":"t"}', /no deviceId/],
      ['{"deviceId":"","id":"r","type":"t"}', /no deviceId/],
      ['{"deviceId":"d","id":7,"type":"t"}', /no valid id/],
      [`{"deviceId":"d","id":"${"x".repeat(200)}","type":"t"}`, /no valid id/],
      ['{"deviceId":"d","id":"r"}', /no type/],
    ];
    for (const [value, reason] of cases) {
      const decoded = decodeRequest(raw(value, routeHeaders()));
      assert.equal(decoded.ok, false, value);
      assert.ok(!decoded.ok);
      assert.match(decoded.reason, reason, value);
      assert.equal(decoded.request, null);
    }
  });

  it("are refused without a valid reply route, keeping the request for the dead letter", () => {
    const value = '{"deviceId":"d","id":"r","type":"t","body":1,"receivedAt":5}';
    const headerCases: Array<Record<string, string>> = [
      {},
      { ...routeHeaders(), [Header.ReplySlot]: "-1" },
      { ...routeHeaders(), [Header.ReplySlot]: "one" },
      { [Header.ReplySlot]: "1", [Header.ReplyEdge]: "e" },
    ];
    for (const headers of headerCases) {
      const decoded = decodeRequest(raw(value, headers));
      assert.ok(!decoded.ok);
      assert.match(decoded.reason, /reply route/);
      assert.deepEqual(decoded.request, { deviceId: "d", id: "r", type: "t", body: 1, receivedAt: 5 });
    }
  });
});
