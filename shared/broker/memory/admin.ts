import { ErrorCode, TetherError } from "../../errors/index.ts";
import type { BrokerAdmin, TopicSpec } from "../types.ts";
import type { Cluster } from "./cluster.ts";

export class MemoryAdmin implements BrokerAdmin {
  readonly #cluster: Cluster;

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
  }

  async ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
    this.#cluster.ensureTopics(topics);
  }

  async partitionCount(topic: string): Promise<number> {
    return this.#cluster.requireTopic(topic).partitions.length;
  }

  async groupLag(groupId: string, topic: string): Promise<number> {
    return this.#cluster.groupLag(groupId, topic);
  }

  async endOffsets(topic: string): Promise<readonly number[]> {
    return this.#cluster.requireTopic(topic).partitions.map((log) => log.end());
  }

  async ping(): Promise<void> {
    if (this.#cluster.failing) throw new TetherError(ErrorCode.Unavailable, "broker unavailable");
  }

  async close(): Promise<void> {}
}
