import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodeControl,
  decodeDeadLetter,
  decodeDownlink,
  decodePresence,
  decodeReply,
  decodeRequest,
  Header,
} from "../../../shared/records/index.ts";
import { raw } from "./helpers.ts";

const decoders = { decodeRequest, decodeReply, decodeControl, decodeDownlink, decodePresence, decodeDeadLetter };

const values: Array<string | Buffer> = [
  "",
  Buffer.from([0xff, 0xfe, 0x00, 0xc3]),
  "[".repeat(200_000),
  '{"a":'.repeat(50_000),
  "true",
  '"text"',
  "{}",
  '{"__proto__":{"deviceId":"d"}}',
  '{"deviceId":{},"id":[],"type":null,"op":1,"event":[],"error":1,"source":"x"}',
];

const headerSets: Array<Record<string, string>> = [
  {},
  { [Header.Kind]: "control" },
  { [Header.Kind]: "push", [Header.Device]: "d", [Header.Hops]: "-1", [Header.ExpiresAt]: "1e400" },
  { [Header.Kind]: "", [Header.ReplySlot]: "99999999", [Header.ReplyEdge]: "", [Header.ReplyConn]: "" },
];

describe("decoders", () => {
  it("never throw, whatever the value and headers, and give a reason when they refuse", () => {
    for (const [name, decode] of Object.entries(decoders)) {
      for (const value of values) {
        for (const headers of headerSets) {
          let result: { ok: boolean; reason?: string } | undefined;
          assert.doesNotThrow(() => {
            result = decode(raw(value, headers, null));
          }, name);
          assert.ok(result !== undefined);
          if (!result.ok) assert.ok(typeof result.reason === "string" && result.reason !== "", name);
        }
      }
    }
  });
});
