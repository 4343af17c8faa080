/** ensureTopics against the real local Kafka 4 broker: topics grow with the settings, never shrink. */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, test } from "node:test";
import { createKafkaBroker } from "../../../shared/broker/kafka/index.ts";
import { tetherTopics } from "../../../shared/broker/topics.ts";
import { resourceNames } from "../../../shared/config/index.ts";
import { createLogger } from "../../../shared/log/index.ts";
import { localKafkaSettings, uniquePrefix, useLocalCluster } from "../../harness/index.ts";

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly topic?: string;
  readonly from?: number;
  readonly partitions?: number;
  readonly asked?: number;
}

/** A logger that keeps every line it writes, parsed. */
function recordingLogger(): { logger: ReturnType<typeof createLogger>; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString("utf8").split("\n")) {
        if (text.trim() !== "") lines.push(JSON.parse(text) as LogLine);
      }
      done();
    },
  });
  return { logger: createLogger({ name: "test", level: "info", destination }), lines };
}

const WARN = 40;

describe("ensureTopics on a real broker", () => {
  test("raising maxEdges and workPartitions adds partitions to the existing topics, and lowering them removes none but warns", async () => {
    const env = await useLocalCluster();
    const { logger, lines } = recordingLogger();
    const broker = createKafkaBroker({ settings: localKafkaSettings(env), logger });
    const names = resourceNames(uniquePrefix());
    const count = async (topic: string): Promise<number> => {
      const admin = broker.admin();
      try {
        return await admin.partitionCount(topic);
      } finally {
        await admin.close();
      }
    };
    const ensure = async (maxEdges: number, workPartitions: number): Promise<void> => {
      const admin = broker.admin();
      try {
        await admin.ensureTopics(tetherTopics({ names, maxEdges, workPartitions }));
      } finally {
        await admin.close();
      }
    };

    await ensure(2, 2);
    assert.equal(await count(names.repliesTopic), 2);
    assert.equal(await count(names.requestsTopic), 2);

    // A redeploy with more edge slots and more worker partitions.
    await ensure(6, 3);
    assert.equal(await count(names.repliesTopic), 6, "replies grew to maxEdges");
    assert.equal(await count(names.requestsTopic), 3, "requests grew to workPartitions");
    assert.equal(await count(names.downlinkTopic), 3, "downlink grew to workPartitions");
    assert.equal(await count(names.dlqTopic), 1, "a topic asked for the same count is left alone");
    const grew = lines.filter((line) => line.msg === "topic grew");
    assert.deepEqual(
      grew.map((line) => [line.topic, line.from, line.partitions]).sort(),
      [
        [names.downlinkTopic, 2, 3],
        [names.eventsTopic, 2, 3],
        [names.repliesTopic, 2, 6],
        [names.requestsTopic, 2, 3],
      ].sort(),
    );

    // Asking for fewer changes nothing (Kafka cannot drop partitions) and says so.
    await ensure(4, 3);
    assert.equal(await count(names.repliesTopic), 6, "replies never shrinks");
    const warning = lines.find((line) => line.level === WARN && line.topic === names.repliesTopic);
    assert.ok(warning, "a warning names the topic with more partitions than asked");
    assert.equal(warning.partitions, 6);
    assert.equal(warning.asked, 4);
    assert.match(warning.msg, /more partitions than asked/);
  });

  test("two processes growing the same topic at once both succeed", async () => {
    const env = await useLocalCluster();
    const { logger } = recordingLogger();
    const broker = createKafkaBroker({ settings: localKafkaSettings(env), logger });
    const names = resourceNames(uniquePrefix());
    const ensure = async (maxEdges: number): Promise<void> => {
      const admin = broker.admin();
      try {
        await admin.ensureTopics(tetherTopics({ names, maxEdges, workPartitions: 1 }));
      } finally {
        await admin.close();
      }
    };
    await ensure(2);
    await Promise.all([ensure(5), ensure(5)]);
    const admin = broker.admin();
    try {
      assert.equal(await admin.partitionCount(names.repliesTopic), 5);
    } finally {
      await admin.close();
    }
  });
});
