import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  answerRecord,
  type ControlRecord,
  controlRecord,
  decodeControl,
  decodeReply,
  forwardedRecord,
  Header,
  pushFrame,
  pushRecord,
  ReplyKind,
} from "../../../shared/records/index.ts";
import { raw, received } from "./helpers.ts";

const route = { slot: 2, edgeId: "edge-a", connId: "conn-1" };
const request = { deviceId: "pump-1", id: "r1", receivedAt: 1_700_000_000_500 };
const answerFrame = '{"t":"res","id":"r1","body":{"ok":true}}';

describe("answer records", () => {
  it("go to the reply route's slot, keyed by the device, with connection, request id and receipt time", () => {
    const message = answerRecord("replies", route, request, answerFrame);
    assert.equal(message.partition, 2);
    assert.equal(message.key, "pump-1");
    assert.equal(message.value, answerFrame);
    assert.deepEqual(message.headers, {
      [Header.Conn]: "conn-1",
      [Header.RequestId]: "r1",
      [Header.ReceivedAt]: "1700000000500",
    });
  });

  it("decode to the answer with its frame bytes untouched", () => {
    const decoded = decodeReply(received(answerRecord("replies", route, request, answerFrame)));
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.value, {
      kind: "answer",
      deviceId: "pump-1",
      connId: "conn-1",
      requestId: "r1",
      receivedAt: 1_700_000_000_500,
      expiresAt: null,
      hops: 0,
      frame: Buffer.from(answerFrame),
    });
  });

  it("without a kind header read as answers, the device taken from the key", () => {
    const decoded = decodeReply(raw(answerFrame, { [Header.Conn]: "c", [Header.RequestId]: "r1" }, "dev-key"));
    assert.ok(decoded.ok);
    assert.equal(decoded.value.kind, ReplyKind.Answer);
    assert.ok(decoded.value.kind === "answer");
    assert.equal(decoded.value.deviceId, "dev-key");
    assert.equal(decoded.value.connId, "c");
    assert.equal(decoded.value.requestId, "r1");
  });

  it("keep their kind from the header even when the frame looks like another kind", () => {
    const pushLike = pushFrame({ messageId: "m", type: "t", body: null });
    const decoded = decodeReply(raw(pushLike, { [Header.Device]: "d" }));
    assert.ok(decoded.ok);
    assert.equal(decoded.value.kind, "answer");
    const answerLike = decodeReply(raw(answerFrame, { [Header.Kind]: "push", [Header.Device]: "d" }));
    assert.ok(answerLike.ok);
    assert.equal(answerLike.value.kind, "push");
  });

  it("read missing or malformed optional headers as null rather than refusing the answer", () => {
    const decoded = decodeReply(
      raw(answerFrame, { [Header.Device]: "d", [Header.ReceivedAt]: "soon", [Header.Hops]: "many" }),
    );
    assert.ok(decoded.ok);
    assert.ok(decoded.value.kind === "answer");
    assert.equal(decoded.value.connId, null);
    assert.equal(decoded.value.requestId, null);
    assert.equal(decoded.value.receivedAt, null);
    assert.equal(decoded.value.hops, 0);
  });
});

describe("push records", () => {
  const push = { deviceId: "pump-1", messageId: "m-1", expiresAt: 1_700_000_060_000 };
  const frame = pushFrame({ messageId: "m-1", type: "note", body: { n: 1 } });

  it("go to the given slot with kind, device, message id and expiry headers", () => {
    const message = pushRecord("replies", 3, push, frame);
    assert.equal(message.partition, 3);
    assert.equal(message.key, "pump-1");
    assert.equal(message.value, frame);
    assert.deepEqual(message.headers, {
      [Header.Kind]: "push",
      [Header.Device]: "pump-1",
      [Header.MessageId]: "m-1",
      [Header.ExpiresAt]: "1700000060000",
    });
  });

  it("decode to the push, its frame untouched", () => {
    const decoded = decodeReply(received(pushRecord("replies", 3, push, frame)));
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.value, {
      kind: "push",
      deviceId: "pump-1",
      messageId: "m-1",
      expiresAt: 1_700_000_060_000,
      connId: null,
      hops: 0,
      frame: Buffer.from(frame),
    });
  });

  it("without a message id header decode with a null id, the frame not read", () => {
    const decoded = decodeReply(raw(frame, { [Header.Kind]: "push", [Header.Device]: "d" }));
    assert.ok(decoded.ok);
    assert.ok(decoded.value.kind === "push");
    assert.equal(decoded.value.messageId, null);
    assert.equal(decoded.value.expiresAt, null);
  });
});

describe("control records", () => {
  const orders: ControlRecord[] = [
    { op: "close", deviceId: "pump-1", connId: "conn-1", reason: "kicked" },
    { op: "close", deviceId: "pump-1", connId: "conn-1", reason: "replaced" },
    { op: "close", deviceId: "pump-1", connId: "conn-1", reason: "replaced", epoch: 7 },
    { op: "deliver_outbox", deviceId: "pump-1" },
  ];

  it("decode to the order they were encoded from, alone and as a reply", () => {
    for (const order of orders) {
      const message = received(controlRecord("replies", 1, order));
      assert.deepEqual(decodeControl(message), { ok: true, value: order });
      assert.deepEqual(decodeReply(message), { ok: true, value: { kind: "control", control: order } });
    }
  });

  it("carry kind and device headers, and the connection of a close order", () => {
    const close = controlRecord("replies", 1, orders[0]!);
    assert.equal(close.partition, 1);
    assert.equal(close.key, "pump-1");
    assert.deepEqual(close.headers, { [Header.Kind]: "control", [Header.Device]: "pump-1", [Header.Conn]: "conn-1" });
    const deliver = controlRecord("replies", 1, orders[3]!);
    assert.deepEqual(deliver.headers, { [Header.Kind]: "control", [Header.Device]: "pump-1" });
  });

  it("read a close order of an unknown reason as replaced", () => {
    const decoded = decodeControl(raw('{"op":"close","deviceId":"d","connId":"c","reason":"draining"}'));
    assert.deepEqual(decoded, { ok: true, value: { op: "close", deviceId: "d", connId: "c", reason: "replaced" } });
  });

  it("are refused with a reason when the value is not an order", () => {
    const cases: Array<[string, RegExp]> = [
      ["{", /not JSON/],
      ['"close"', /not a JSON object/],
      ['{"op":"close","connId":"c"}', /no deviceId/],
      ['{"op":"explode","deviceId":"d"}', /unknown op/],
      ['{"op":"close","deviceId":"d"}', /no connId/],
    ];
    for (const [value, reason] of cases) {
      const message = raw(value, { [Header.Kind]: "control", [Header.Device]: "d" });
      const alone = decodeControl(message);
      assert.ok(!alone.ok, value);
      assert.match(alone.reason, reason);
      const reply = decodeReply(message);
      assert.ok(!reply.ok, value);
      assert.match(reply.reason, reason);
    }
  });
});

describe("replies that cannot be read", () => {
  it("are refused when they are of an unknown kind", () => {
    const decoded = decodeReply(raw(answerFrame, { [Header.Kind]: "gossip", [Header.Device]: "d" }));
    assert.ok(!decoded.ok);
    assert.match(decoded.reason, /unknown kind gossip/);
  });

  it("are refused when they name no device, by header or key", () => {
    for (const kind of [ReplyKind.Answer, ReplyKind.Push]) {
      const decoded = decodeReply(raw(answerFrame, { [Header.Kind]: kind }, null));
      assert.ok(!decoded.ok);
      assert.match(decoded.reason, /no device/);
      assert.ok(!decodeReply(raw(answerFrame, { [Header.Kind]: kind, [Header.Device]: "" }, null)).ok);
    }
  });
});

describe("forwarded records", () => {
  it("copy value and headers to the new slot, with the new connection and one hop more", () => {
    const original = received(answerRecord("replies", route, request, answerFrame), { partition: 2 });
    const forwarded = forwardedRecord("replies", 5, original, "conn-7");
    assert.equal(forwarded.topic, "replies");
    assert.equal(forwarded.partition, 5);
    assert.equal(forwarded.key, "pump-1");
    assert.equal(forwarded.value, original.value, "the same bytes, not a copy");
    assert.deepEqual(forwarded.headers, { ...original.headers, [Header.Conn]: "conn-7", [Header.Hops]: "1" });
    const again = decodeReply(received(forwardedRecord("replies", 6, received(forwarded), "conn-8")));
    assert.ok(again.ok);
    assert.ok(again.value.kind === "answer");
    assert.equal(again.value.hops, 2);
    assert.equal(again.value.connId, "conn-8");
    assert.equal(again.value.requestId, "r1");
  });

  it("of a push keep its kind, id and expiry, and name the connection", () => {
    const push = { deviceId: "pump-1", messageId: "m-1", expiresAt: 1_700_000_060_000 };
    const frame = pushFrame({ messageId: "m-1", type: "note", body: 1 });
    const forwarded = forwardedRecord("replies", 0, received(pushRecord("replies", 3, push, frame)), "conn-2");
    const decoded = decodeReply(received(forwarded));
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.value, {
      kind: "push",
      deviceId: "pump-1",
      messageId: "m-1",
      expiresAt: 1_700_000_060_000,
      connId: "conn-2",
      hops: 1,
      frame: Buffer.from(frame),
    });
  });

  it("take the device from the key when the original has no device header", () => {
    const forwarded = forwardedRecord("replies", 1, raw(answerFrame, {}, "dev-key"), "c");
    assert.equal(forwarded.key, "dev-key");
  });
});
