import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_JSON_DEPTH, scanJson } from "../../../shared/protocol/index.ts";
import { prng } from "../../harness/random.ts";

function scan(text: string) {
  return scanJson(Buffer.from(text, "utf8"));
}

function memberText(text: string, key: string): string | undefined {
  const result = scan(text);
  assert.ok(result.ok, text);
  const member = result.members?.get(key);
  return member === undefined ? undefined : Buffer.from(text, "utf8").toString("utf8", member.start, member.end);
}

describe("scanJson", () => {
  it("accepts exactly what JSON.parse accepts, over 60,000 random and mutated texts", () => {
    const rand = prng(7);
    const pieces = [
      '{"a":',
      "[",
      "]",
      "{",
      "}",
      ",",
      ":",
      '"x"',
      '"\\u00e9"',
      '"\\q"',
      "1",
      "-0",
      "01",
      "1.",
      "1e5",
      "-1.5E-3",
      "true",
      "tru",
      "null",
      " ",
      "\t",
      '"',
      "\\",
      "\u0001",
      "é",
    ];
    let accepted = 0;
    for (let n = 0; n < 60_000; n++) {
      let text = "";
      const count = 1 + Math.floor(rand() * 12);
      for (let i = 0; i < count; i++) text += pieces[Math.floor(rand() * pieces.length)];
      if (rand() < 0.3) text = JSON.stringify({ t: "req", id: String(n), body: [text, { k: text }] });
      let expected = true;
      try {
        JSON.parse(text);
      } catch {
        expected = false;
      }
      const result = scan(text);
      assert.equal(result.ok, expected, `scanJson and JSON.parse disagree on ${JSON.stringify(text)}`);
      if (expected) accepted++;
    }
    assert.ok(accepted > 1000, `only ${accepted} valid texts generated`);
  });

  it(`refuses nesting past ${MAX_JSON_DEPTH} levels while reading, without recursion`, () => {
    const nested = (depth: number) => `{"t":"req","body":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`;
    assert.equal(scan(nested(MAX_JSON_DEPTH)).ok, true);
    const over = scan(nested(MAX_JSON_DEPTH + 1));
    assert.equal(over.ok, false);
    assert.match(over.ok ? "" : over.message, /deeper than 64/);
    // 6,000 deep (and a million deep) costs no stack: refused at level 65.
    for (const depth of [6000, 1_000_000]) {
      const result = scan(`{"body":${"[".repeat(depth)}${"]".repeat(depth)}}`);
      assert.equal(result.ok, false);
    }
    const objects = scan(`${'{"a":'.repeat(70)}1${"}".repeat(70)}`);
    assert.equal(objects.ok, false);
  });

  it("reports each top-level member's value as the exact bytes of the text", () => {
    const text = '{ "t" : "req", "body" : { "a" : 1.50, "b" : [ "\\u00e9" , null ] } , "id":"x" }';
    assert.equal(memberText(text, "body"), '{ "a" : 1.50, "b" : [ "\\u00e9" , null ] }');
    assert.equal(memberText(text, "t"), '"req"');
    assert.equal(memberText(text, "id"), '"x"');
    assert.equal(memberText(text, "a"), undefined, "nested keys are not top-level members");
    assert.equal(
      memberText('{"body":"x","body":[2]}', "body"),
      "[2]",
      "a repeated key counts as JSON.parse does: the last",
    );
    assert.equal(memberText('{"b\\u006fdy":7}', "body"), "7", "escaped keys are decoded");
    assert.equal(memberText('{"__proto__":{"x":1},"t":"ping"}', "__proto__"), '{"x":1}');
    assert.equal(memberText('{"n":1e999999}', "n"), "1e999999");
    const long = "y".repeat(60_000);
    assert.equal(memberText(`{"s":"${long}"}`, "s"), `"${long}"`);
  });

  it("tells objects from other values", () => {
    for (const text of ["[1]", "1", '"s"', "null"]) {
      const result = scan(text);
      assert.ok(result.ok);
      assert.equal(result.isObject, false);
      assert.equal(result.members, null);
    }
    const empty = scan(" {} ");
    assert.ok(empty.ok && empty.isObject && empty.members?.size === 0);
  });
});
