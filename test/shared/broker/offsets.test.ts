import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { OffsetSaver } from "../../../shared/broker/offsets.ts";
import { createLogger } from "../../../shared/log/index.ts";

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly nextOffset?: number;
  readonly err?: { readonly message: string };
}

function recordingLogger() {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line !== "") lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { logger: createLogger({ name: "test", level: "debug", destination }), lines };
}

test("a watermark is saved once, and one that does not grow is not saved again", async () => {
  const saves: number[] = [];
  const saver = new OffsetSaver({ load: async () => null, save: async (next) => void saves.push(next) }, undefined);
  await saver.save(-1);
  await saver.save(2);
  await saver.save(2);
  await saver.save(1);
  await saver.save(5);
  assert.deepEqual(saves, [2, 5]);
});

test("a rejected save is logged with its error, rejects, and is offered again by the next save", async () => {
  const { logger, lines } = recordingLogger();
  let failing = true;
  const saves: number[] = [];
  const saver = new OffsetSaver(
    {
      load: async () => null,
      save: async (next) => {
        saves.push(next);
        if (failing) throw new Error("generation moved on");
      },
    },
    logger,
  );
  await assert.rejects(saver.save(4), /generation moved on/);
  const warning = lines.find((line) => line.level === 40);
  assert.equal(warning?.err?.message, "generation moved on");
  assert.equal(warning?.nextOffset, 4);
  failing = false;
  await saver.save(4);
  assert.deepEqual(saves, [4, 4]);
});

test("saves run one at a time, in the order they were asked for", async () => {
  let running = 0;
  let peak = 0;
  const saves: number[] = [];
  const saver = new OffsetSaver(
    {
      load: async () => null,
      save: async (next) => {
        running += 1;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setTimeout(resolve, 5));
        saves.push(next);
        running -= 1;
      },
    },
    undefined,
  );
  await Promise.all([saver.save(1), saver.save(2), saver.save(3)]);
  assert.equal(peak, 1);
  assert.deepEqual(saves, [1, 2, 3]);
});
