import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodePresence, type PresenceEvent, presenceRecord } from "../../../shared/records/index.ts";
import { raw, received } from "./helpers.ts";

const connected: PresenceEvent = { event: "connected", deviceId: "d-1", edgeId: "edge-a", connId: "c-1", at: 1000 };
const disconnected: PresenceEvent = { ...connected, event: "disconnected", at: 2000, reason: "idle_timeout" };

describe("presence records", () => {
  it("decode to the event they were encoded from", () => {
    for (const event of [connected, disconnected, { ...connected, epoch: 3 }]) {
      assert.deepEqual(decodePresence(received(presenceRecord("events", event))), { ok: true, value: event });
    }
  });

  it("are keyed by the device, without headers, in the edge's field order", () => {
    const message = presenceRecord("events", disconnected);
    assert.equal(message.topic, "events");
    assert.equal(message.key, "d-1");
    assert.equal(message.headers, undefined);
    assert.equal(
      message.value,
      '{"event":"disconnected","deviceId":"d-1","edgeId":"edge-a","connId":"c-1","at":2000,"reason":"idle_timeout"}',
    );
    assert.equal(presenceRecord("events", { ...connected, reason: undefined }).value, JSON.stringify(connected));
    const withEpoch = { ...disconnected, epoch: 4 };
    assert.equal(presenceRecord("events", withEpoch).value, JSON.stringify(withEpoch));
  });

  it("are refused with a reason when the value is not an event", () => {
    const valid = { event: "connected", deviceId: "d", edgeId: "e", connId: "c", at: 1 };
    const cases: Array<[string, RegExp]> = [
      ["}", /not JSON/],
      ["1", /not a JSON object/],
      [JSON.stringify({ ...valid, event: "moved" }), /neither connected nor disconnected/],
      [JSON.stringify({ ...valid, deviceId: 5 }), /no deviceId/],
      [JSON.stringify({ ...valid, edgeId: "" }), /no edgeId/],
      [JSON.stringify({ ...valid, connId: null }), /no connId/],
      [JSON.stringify({ ...valid, at: "now" }), /no valid at/],
      [JSON.stringify({ ...valid, reason: 3 }), /reason is not a string/],
    ];
    for (const [value, reason] of cases) {
      const decoded = decodePresence(raw(value));
      assert.ok(!decoded.ok, value);
      assert.match(decoded.reason, reason, value);
    }
  });
});
