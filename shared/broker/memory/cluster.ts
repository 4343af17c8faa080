import { ErrorCode, TetherError } from "../../errors/index.ts";
import type { Logger } from "../../log/index.ts";
import type { OutgoingMessage, TopicSpec } from "../types.ts";
import { PartitionLog, partitionId } from "./log.ts";
import { partitionForKey } from "./murmur2.ts";

export interface MemoryBrokerOptions {
  /** Receives handler failures (the dispatcher retries them) and rebalance problems. */
  readonly logger?: Logger;
  /** Messages a consumer takes ahead of its handlers before it stops fetching. Default 2000. */
  readonly maxPending?: number;
  /**
   * Records kept per partition besides each topic's `retention.ms`; older ones are dropped
   * and a consumer behind them skips ahead, as Kafka's `auto.offset.reset=earliest` does.
   * Default 100,000.
   */
  readonly maxRecordsPerPartition?: number;
  /** How long a rebalance waits for a revoked partition's running handlers. Default 30 s. */
  readonly rebalanceTimeoutMs?: number;
}

export interface TopicState {
  readonly name: string;
  readonly partitions: readonly PartitionLog[];
}

/** What the group coordinator needs from a member. */
export interface GroupMember {
  readonly id: string;
  readonly topics: readonly string[];
  /** Partitions owned now, as `topic:partition`. */
  readonly owned: Set<string>;
  /** Stops fetching `ids`, waits for their running handlers, commits their final positions. */
  revoke(ids: readonly string[]): Promise<void>;
  /** Starts fetching `ids` from the group's committed offsets. */
  assign(ids: readonly string[]): void;
}

export interface GroupState {
  readonly id: string;
  readonly committed: Map<string, number>;
  readonly members: GroupMember[];
  chain: Promise<void>;
  nextMemberId: number;
}

/** The shared state behind one {@link MemoryBroker}: its topics, groups and offsets. */
export class Cluster {
  readonly logger: Logger | undefined;
  readonly maxPending: number;
  readonly maxRecords: number;
  readonly rebalanceTimeoutMs: number;
  readonly #topics = new Map<string, TopicState>();
  readonly #groups = new Map<string, GroupState>();
  failing = false;
  #roundRobin = 0;

  constructor(options: MemoryBrokerOptions) {
    this.logger = options.logger;
    this.maxPending = Math.max(1, options.maxPending ?? 2000);
    this.maxRecords = Math.max(1, options.maxRecordsPerPartition ?? 100_000);
    this.rebalanceTimeoutMs = options.rebalanceTimeoutMs ?? 30_000;
  }

  topic(name: string): TopicState | undefined {
    return this.#topics.get(name);
  }

  requireTopic(name: string): TopicState {
    const topic = this.#topics.get(name);
    if (topic === undefined) {
      throw new TetherError(ErrorCode.NotFound, `topic ${name} does not exist`, { details: { topic: name } });
    }
    return topic;
  }

  log(topic: string, partition: number): PartitionLog | undefined {
    return this.#topics.get(topic)?.partitions[partition];
  }

  /** Creates missing topics and grows those with fewer partitions than asked, as Kafka's adapter does. */
  ensureTopics(specs: readonly TopicSpec[]): void {
    const created: string[] = [];
    for (const spec of specs) {
      if (!Number.isInteger(spec.partitions) || spec.partitions < 1) {
        throw new TetherError(ErrorCode.InvalidArgument, `topic ${spec.name} needs at least one partition`);
      }
      const retention = Number(spec.config?.["retention.ms"] ?? -1);
      const retentionMs = Number.isFinite(retention) ? retention : -1;
      const existing = this.#topics.get(spec.name);
      if (existing !== undefined) {
        if (existing.partitions.length >= spec.partitions) continue;
        const added = Array.from(
          { length: spec.partitions - existing.partitions.length },
          (_, offset) => new PartitionLog(spec.name, existing.partitions.length + offset, retentionMs, this.maxRecords),
        );
        this.#topics.set(spec.name, { name: spec.name, partitions: [...existing.partitions, ...added] });
        created.push(spec.name);
        continue;
      }
      const partitions = Array.from(
        { length: spec.partitions },
        (_, index) => new PartitionLog(spec.name, index, retentionMs, this.maxRecords),
      );
      this.#topics.set(spec.name, { name: spec.name, partitions });
      created.push(spec.name);
    }
    // Members subscribed to a topic before it existed (or grew) get its new partitions now.
    for (const group of this.#groups.values()) {
      if (group.members.some((member) => member.topics.some((topic) => created.includes(topic)))) {
        void this.rebalance(group);
      }
    }
  }

  choosePartition(message: OutgoingMessage, topic: TopicState): number {
    const count = topic.partitions.length;
    if (message.partition !== undefined) {
      if (!Number.isInteger(message.partition) || message.partition < 0 || message.partition >= count) {
        throw new TetherError(ErrorCode.NotFound, `topic ${topic.name} has no partition ${message.partition}`, {
          details: { topic: topic.name, partition: message.partition },
        });
      }
      return message.partition;
    }
    if (message.key !== undefined && message.key !== null) return partitionForKey(message.key, count);
    this.#roundRobin = (this.#roundRobin + 1) % 0x40000000;
    return this.#roundRobin % count;
  }

  group(id: string): GroupState {
    let group = this.#groups.get(id);
    if (group === undefined) {
      group = { id, committed: new Map(), members: [], chain: Promise.resolve(), nextMemberId: 0 };
      this.#groups.set(id, group);
    }
    return group;
  }

  committed(groupId: string, topic: string, partition: number): number | undefined {
    return this.#groups.get(groupId)?.committed.get(partitionId(topic, partition));
  }

  commit(groupId: string, topic: string, partition: number, position: number): void {
    this.group(groupId).committed.set(partitionId(topic, partition), position);
  }

  groupLag(groupId: string, topicName: string): number {
    const topic = this.requireTopic(topicName);
    let lag = 0;
    for (const log of topic.partitions) {
      const committed = this.committed(groupId, topicName, log.partition) ?? log.start();
      lag += Math.max(0, log.end() - committed);
    }
    return lag;
  }

  join(group: GroupState, member: GroupMember): Promise<void> {
    group.members.push(member);
    return this.rebalance(group);
  }

  leave(group: GroupState, member: GroupMember): Promise<void> {
    const index = group.members.indexOf(member);
    if (index < 0) return group.chain;
    group.members.splice(index, 1);
    return this.rebalance(group);
  }

  /** Rebalances run one at a time per group, each on the membership of its turn. */
  rebalance(group: GroupState): Promise<void> {
    const next = group.chain.then(() => this.#rebalance(group));
    group.chain = next.catch((error: unknown) => {
      this.logger?.error({ err: error, groupId: group.id }, "rebalance failed");
    });
    return group.chain;
  }

  async #rebalance(group: GroupState): Promise<void> {
    const members = [...group.members];
    const desired = new Map<GroupMember, Set<string>>(members.map((member) => [member, new Set<string>()]));
    const topicNames = [...new Set(members.flatMap((member) => member.topics))].sort();
    for (const name of topicNames) {
      const topic = this.#topics.get(name);
      if (topic === undefined) continue;
      const subscribers = members.filter((member) => member.topics.includes(name));
      const ids = topic.partitions.map((log) => partitionId(name, log.partition));
      for (const [member, assigned] of assignSticky(ids, subscribers)) {
        for (const id of assigned) desired.get(member)!.add(id);
      }
    }
    // Every revoked partition is committed before anyone else starts reading it.
    await Promise.all(
      members.map((member) => {
        const keep = desired.get(member)!;
        return member.revoke([...member.owned].filter((id) => !keep.has(id)));
      }),
    );
    for (const member of members) {
      member.assign([...desired.get(member)!].filter((id) => !member.owned.has(id)));
    }
  }
}

/**
 * Balanced (counts differ by at most one) and sticky: a partition stays with its owner while
 * the owner is under its share, so a join or leave moves as few partitions as it can.
 */
function assignSticky(ids: readonly string[], members: readonly GroupMember[]): Map<GroupMember, string[]> {
  const result = new Map<GroupMember, string[]>(members.map((member) => [member, []]));
  if (members.length === 0) return result;
  const floor = Math.floor(ids.length / members.length);
  let withExtra = ids.length % members.length;
  const owners = new Map<string, GroupMember>();
  for (const member of members) for (const id of member.owned) owners.set(id, member);
  const rest: string[] = [];
  for (const id of ids) {
    const owner = owners.get(id);
    const list = owner === undefined ? undefined : result.get(owner);
    if (list !== undefined && list.length < floor) {
      list.push(id);
    } else if (list !== undefined && list.length === floor && withExtra > 0) {
      list.push(id);
      withExtra -= 1;
    } else {
      rest.push(id);
    }
  }
  for (const id of rest) {
    let target = members[0]!;
    for (const member of members) {
      if (result.get(member)!.length < result.get(target)!.length) target = member;
    }
    const list = result.get(target)!;
    if (list.length === floor) withExtra -= 1;
    list.push(id);
  }
  return result;
}
