import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodePush } from "../../../shared/protocol/index.ts";
import {
  type DownlinkRecord,
  decodeDownlink,
  downlinkRecord,
  Header,
  pushFrame,
} from "../../../shared/records/index.ts";
import { raw, received } from "./helpers.ts";

const push: DownlinkRecord = {
  deviceId: "thermo-1",
  messageId: "m-1",
  type: "config.update",
  body: { setpoint: 21.5, modes: ["eco", null] },
  expiresAt: 1_700_000_600_000,
  createdAt: 1_700_000_000_000,
};

describe("downlink records", () => {
  it("decode to the push they were encoded from", () => {
    assert.deepEqual(decodeDownlink(received(downlinkRecord("downlink", push))), { ok: true, value: push });
  });

  it("are keyed by the device and carry device and message id headers", () => {
    const message = downlinkRecord("downlink", push);
    assert.equal(message.topic, "downlink");
    assert.equal(message.key, "thermo-1");
    assert.equal(message.partition, undefined);
    assert.deepEqual(message.headers, { [Header.Device]: "thermo-1", [Header.MessageId]: "m-1" });
    assert.deepEqual(Object.keys(JSON.parse(String(message.value))), [
      "deviceId",
      "messageId",
      "type",
      "body",
      "expiresAt",
      "createdAt",
    ]);
  });

  it("read a missing body as null and a missing creation time as the broker's timestamp", () => {
    const decoded = decodeDownlink(raw('{"deviceId":"d","messageId":"m","type":"t","expiresAt":9}'));
    assert.ok(decoded.ok);
    assert.equal(decoded.value.body, null);
    assert.equal(decoded.value.createdAt, 1_700_000_000_000);
  });

  it("are refused with a reason when the value is not a push", () => {
    const cases: Array<[string, RegExp]> = [
      ["nope", /not JSON/],
      ["[]", /not a JSON object/],
      ['{"messageId":"m","type":"t","expiresAt":1}', /no deviceId/],
      ['{"deviceId":"d","type":"t","expiresAt":1}', /no messageId/],
      ['{"deviceId":"d","messageId":"m","type":"","expiresAt":1}', /no type/],
      ['{"deviceId":"d","messageId":"m","type":"t","expiresAt":"tomorrow"}', /no valid expiresAt/],
      ['{"deviceId":"d","messageId":"m","type":"t"}', /no valid expiresAt/],
    ];
    for (const [value, reason] of cases) {
      const decoded = decodeDownlink(raw(value));
      assert.ok(!decoded.ok, value);
      assert.match(decoded.reason, reason, value);
    }
  });
});

describe("push frames", () => {
  it("are the protocol's push frame without its line end", () => {
    const frame = pushFrame(push);
    assert.equal(`${frame}\n`, encodePush("m-1", "config.update", JSON.stringify(push.body)));
    assert.deepEqual(JSON.parse(frame), { t: "push", id: "m-1", type: "config.update", body: push.body });
  });

  it("are the same text as the frame object serialised", () => {
    for (const body of [null, 0, "text\nwith a line end", [1, { a: "é" }], { nested: { deep: [true] } }]) {
      assert.equal(
        pushFrame({ messageId: "m", type: "t", body }),
        JSON.stringify({ t: "push", id: "m", type: "t", body }),
      );
    }
  });

  it("carry a null body when the push has none", () => {
    assert.equal(
      pushFrame({ messageId: "m", type: "t", body: undefined }),
      '{"t":"push","id":"m","type":"t","body":null}',
    );
  });
});
