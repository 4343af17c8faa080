import type { Broker, BrokerAdmin } from "../../shared/broker/types.ts";
import type { ResourceNames } from "../../shared/config/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import {
  type DeadLetterRecord,
  decodeDeadLetter,
  decodePresence,
  type PresenceEvent,
} from "../../shared/records/index.ts";
import type { EdgeMetricsReader } from "./edge-metrics.ts";
import { ApiError } from "./errors.ts";
import { TopicTail } from "./tail.ts";

/** `events` records read back per partition when the tail starts. */
const EVENTS_HISTORY_PER_PARTITION = 500;
const EVENTS_CAPACITY = 10_000;
/** `requests.dlq` records held: the console lists and replays these. */
const DEAD_LETTER_CAPACITY = 2_000;

/** What the console's routes read besides the registry: topic tails and the edges' metrics. */
export interface ConsoleSources {
  /** Presence events; undefined without a broker to read them from. */
  readonly events: TopicTail<PresenceEvent> | undefined;
  /** Dead letters; undefined without a broker. */
  readonly deadLetters: TopicTail<DeadLetterRecord> | undefined;
  readonly edgeMetrics: EdgeMetricsReader | undefined;
  close(): Promise<void>;
}

export interface ConsoleSourceOptions {
  readonly broker: Broker | undefined;
  readonly admin: BrokerAdmin | undefined;
  readonly names: ResourceNames;
  readonly edgeMetrics: EdgeMetricsReader | undefined;
  readonly logger: Logger;
}

export function consoleSources(options: ConsoleSourceOptions): ConsoleSources {
  const { broker, admin, names, logger } = options;
  const events =
    broker === undefined || admin === undefined
      ? undefined
      : new TopicTail<PresenceEvent>({
          broker,
          admin,
          topic: names.eventsTopic,
          historyPerPartition: EVENTS_HISTORY_PER_PARTITION,
          capacity: EVENTS_CAPACITY,
          decode: (message) => {
            const decoded = decodePresence(message);
            return decoded.ok ? decoded.value : null;
          },
          logger,
        });
  const deadLetters =
    broker === undefined || admin === undefined
      ? undefined
      : new TopicTail<DeadLetterRecord>({
          broker,
          admin,
          topic: names.dlqTopic,
          historyPerPartition: DEAD_LETTER_CAPACITY,
          capacity: DEAD_LETTER_CAPACITY,
          decode: (message) => {
            const decoded = decodeDeadLetter(message);
            return decoded.ok ? decoded.value : null;
          },
          logger,
        });
  return {
    events,
    deadLetters,
    edgeMetrics: options.edgeMetrics,
    async close() {
      await Promise.allSettled([events?.close(), deadLetters?.close()]);
    },
  };
}

/** The tail, started; 503 `unavailable` when there is none or it cannot start. */
export async function startedTail<T>(tail: TopicTail<T> | undefined, what: string): Promise<TopicTail<T>> {
  if (tail === undefined) throw new ApiError("unavailable", `${what} need the admin API to be given a broker`);
  try {
    await tail.start();
  } catch (error) {
    throw new ApiError("unavailable", `${what} cannot be read now; retry later`, { cause: error });
  }
  return tail;
}
