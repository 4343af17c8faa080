import { randomUUID } from "node:crypto";
import type { TestContext } from "node:test";
import type { Broker, IncomingMessage } from "../../../shared/broker/types.ts";

/**
 * The first message on one partition that `accept` takes, read by a consumer of its own
 * group from the start of the partition; rejects after `timeoutMs`.
 */
export async function firstMessage(
  t: TestContext,
  broker: Broker,
  topic: string,
  partition: number,
  accept: (message: IncomingMessage) => boolean = () => true,
  timeoutMs = 5000,
): Promise<IncomingMessage> {
  const consumer = broker.partitionConsumer({ groupId: `admin-test-${randomUUID()}`, topic, partition });
  t.after(() => consumer.close());
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<IncomingMessage>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no matching message on ${topic}:${partition} in ${timeoutMs} ms`)),
        timeoutMs,
      );
      consumer
        .start(async (message) => {
          if (accept(message)) resolve(message);
        })
        .catch(reject);
    });
  } finally {
    clearTimeout(timer);
    await consumer.close();
  }
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}
