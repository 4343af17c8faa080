import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { suggest } from "../../../services/cli/suggest.ts";

const commands = ["token", "connect", "send", "bench", "help"];
const benchOptions = ["host", "port", "device", "devices", "device-prefix", "concurrency", "connect-rate", "type"];

describe("did-you-mean suggestions", () => {
  it("finds the word meant by a typo: a swap, a missing, an extra or a wrong letter", () => {
    assert.equal(suggest("sned", commands), "send");
    assert.equal(suggest("conect", commands), "connect");
    assert.equal(suggest("tokenn", commands), "token");
    assert.equal(suggest("bencj", commands), "bench");
    assert.equal(suggest("prot", benchOptions), "port");
  });

  it("completes a word the input begins, the shortest when several do", () => {
    assert.equal(suggest("concur", benchOptions), "concurrency");
    assert.equal(suggest("dev", benchOptions), "device");
    assert.equal(suggest("connect-r", benchOptions), "connect-rate");
  });

  it("suggests nothing for a word too far from every candidate, or for an exact one", () => {
    assert.equal(suggest("frobnicate", commands), undefined);
    assert.equal(suggest("x", commands), undefined);
    assert.equal(suggest("", commands), undefined);
    assert.equal(suggest("send", commands), undefined);
  });
});
