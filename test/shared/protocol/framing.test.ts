import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LineSplitter } from "../../../shared/protocol/index.ts";

interface Collected {
  readonly lines: string[];
  oversize: number;
  readonly splitter: LineSplitter;
}

function collect(maxFrameBytes: number, skipBlankLines?: boolean): Collected {
  const state: { lines: string[]; oversize: number } = { lines: [], oversize: 0 };
  const splitter = new LineSplitter({
    maxFrameBytes,
    onLine: (line) => state.lines.push(line.toString("utf8")),
    onOversize: () => {
      state.oversize += 1;
    },
    ...(skipBlankLines === undefined ? {} : { skipBlankLines }),
  });
  return Object.assign(state, { splitter });
}

describe("LineSplitter", () => {
  it("emits the same lines when the stream arrives one byte per chunk", () => {
    const frames = ['{"t":"ping"}', '{"t":"req","id":"1","type":"echo","body":{"a":"é"}}', '{"t":"bye"}'];
    const bytes = Buffer.from(frames.map((f) => `${f}\n`).join(""), "utf8");
    const c = collect(1024);
    for (let i = 0; i < bytes.length; i++) c.splitter.push(bytes.subarray(i, i + 1));
    assert.deepEqual(c.lines, frames);
    assert.equal(c.oversize, 0);
    assert.equal(c.splitter.pendingBytes, 0);
  });

  it("emits 1,000 lines that arrive in one chunk, in order", () => {
    const frames = Array.from({ length: 1000 }, (_, i) => `{"t":"req","id":"${i}","type":"echo","body":${i}}`);
    const c = collect(65536);
    c.splitter.push(Buffer.from(frames.map((f) => `${f}\n`).join("")));
    assert.equal(c.lines.length, 1000);
    assert.deepEqual(c.lines, frames);
  });

  it("passes a line that sits whole in one chunk as a view of that chunk, without copying", () => {
    const chunk = Buffer.from('{"t":"ping"}\n');
    let seen: Buffer | undefined;
    const splitter = new LineSplitter({
      maxFrameBytes: 100,
      onLine: (line) => {
        seen = line;
      },
      onOversize: () => {},
    });
    splitter.push(chunk);
    assert.ok(seen);
    assert.equal(seen.buffer, chunk.buffer);
    assert.equal(seen.byteOffset, chunk.byteOffset);
  });

  it("joins lines split at every possible position", () => {
    const text = '{"t":"ack","id":"a"}\r\n{"t":"pong"}\n{"t":"x"}\n';
    for (let cut = 0; cut <= text.length; cut++) {
      for (let cut2 = cut; cut2 <= text.length; cut2 += 3) {
        const c = collect(64);
        c.splitter.push(Buffer.from(text.slice(0, cut)));
        c.splitter.push(Buffer.from(text.slice(cut, cut2)));
        c.splitter.push(Buffer.from(text.slice(cut2)));
        assert.deepEqual(c.lines, ['{"t":"ack","id":"a"}', '{"t":"pong"}', '{"t":"x"}'], `cut at ${cut}/${cut2}`);
      }
    }
  });

  it("strips a trailing carriage return of a \\r\\n ending, also when split between chunks", () => {
    const c = collect(100);
    c.splitter.push(Buffer.from('{"t":"ping"}\r'));
    c.splitter.push(Buffer.from('\n{"t":"bye"}\r\n'));
    assert.deepEqual(c.lines, ['{"t":"ping"}', '{"t":"bye"}']);
  });

  it("keeps a carriage return that is not right before the newline", () => {
    const c = collect(100);
    c.splitter.push(Buffer.from("a\rb\n"));
    assert.deepEqual(c.lines, ["a\rb"]);
  });

  it("accepts a line of exactly maxFrameBytes, with either ending, however it is split", () => {
    const line = "x".repeat(10);
    for (const ending of ["\n", "\r\n"]) {
      const bytes = Buffer.from(line + ending);
      for (let cut = 0; cut <= bytes.length; cut++) {
        const c = collect(10);
        c.splitter.push(bytes.subarray(0, cut));
        c.splitter.push(bytes.subarray(cut));
        assert.deepEqual(c.lines, [line], `ending ${JSON.stringify(ending)} cut at ${cut}`);
        assert.equal(c.oversize, 0);
      }
    }
  });

  it("reports a line one byte over the limit once and drops everything after it", () => {
    const bytes = Buffer.from(`${"x".repeat(11)}\n{"t":"ping"}\n`);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const c = collect(10);
      c.splitter.push(bytes.subarray(0, cut));
      c.splitter.push(bytes.subarray(cut));
      c.splitter.push(Buffer.from('{"t":"ping"}\n'));
      assert.deepEqual(c.lines, [], `cut at ${cut}`);
      assert.equal(c.oversize, 1, `cut at ${cut}`);
      assert.equal(c.splitter.stopped, true);
    }
  });

  it("reports an oversize line when a \\r at the limit is followed by something other than \\n", () => {
    const c = collect(4);
    c.splitter.push(Buffer.from("abcd\r"));
    assert.equal(c.oversize, 0);
    assert.equal(c.splitter.pendingBytes, 5);
    c.splitter.push(Buffer.from("e"));
    assert.equal(c.oversize, 1);
  });

  it("emits the lines before an oversize line in the same chunk", () => {
    const c = collect(8);
    c.splitter.push(Buffer.from('{"t":1}\n0123456789\n{"t":2}\n'));
    assert.deepEqual(c.lines, ['{"t":1}']);
    assert.equal(c.oversize, 1);
  });

  it("never holds more than maxFrameBytes + 1 bytes of an endless line", () => {
    const c = collect(65536);
    const chunk = Buffer.alloc(1000, 0x61);
    let maxHeld = 0;
    for (let i = 0; i < 10_000; i++) {
      c.splitter.push(chunk);
      maxHeld = Math.max(maxHeld, c.splitter.pendingBytes);
    }
    assert.ok(maxHeld <= 65537, `held ${maxHeld}`);
    assert.equal(c.oversize, 1);
    assert.equal(c.splitter.pendingBytes, 0);
  });

  it("reports an endless line in a single huge chunk without buffering it", () => {
    const c = collect(1024);
    c.splitter.push(Buffer.alloc(1 << 20, 0x61));
    assert.equal(c.oversize, 1);
    assert.equal(c.splitter.pendingBytes, 0);
  });

  it("skips blank lines by default and passes them on when asked", () => {
    const skipping = collect(100);
    skipping.splitter.push(Buffer.from('\n\r\n  \t\n{"t":"ping"}\n\n'));
    assert.deepEqual(skipping.lines, ['{"t":"ping"}']);
    const keeping = collect(100, false);
    keeping.splitter.push(Buffer.from('\n\r\n{"t":"ping"}\n'));
    assert.deepEqual(keeping.lines, ["", "", '{"t":"ping"}']);
  });

  it("hands over a buffered line that later pushes never overwrite", () => {
    const held: Buffer[] = [];
    const splitter = new LineSplitter({ maxFrameBytes: 100, onLine: (l) => held.push(l), onOversize: () => {} });
    splitter.push(Buffer.from("aaa"));
    splitter.push(Buffer.from("a\nbb"));
    splitter.push(Buffer.from("b\n"));
    assert.deepEqual(
      held.map((b) => b.toString()),
      ["aaaa", "bbb"],
    );
  });

  it("starts afresh after reset, and stop drops the rest of a chunk", () => {
    const c = collect(4);
    c.splitter.push(Buffer.from("toolong"));
    assert.equal(c.oversize, 1);
    c.splitter.reset();
    c.splitter.push(Buffer.from("ok\n"));
    assert.deepEqual(c.lines, ["ok"]);

    const lines: string[] = [];
    const splitter: LineSplitter = new LineSplitter({
      maxFrameBytes: 10,
      onLine: (l) => {
        lines.push(l.toString());
        splitter.stop();
      },
      onOversize: () => {},
    });
    splitter.push(Buffer.from("a\nb\nc\n"));
    assert.deepEqual(lines, ["a"]);
  });

  it("rejects a maxFrameBytes that is not a positive integer", () => {
    assert.throws(() => new LineSplitter({ maxFrameBytes: 0, onLine: () => {}, onOversize: () => {} }), RangeError);
  });
});
