/**
 * The in-memory broker: topics with partitions, keys placed by Kafka's murmur2 partitioner,
 * consumer groups with committed offsets and rebalancing, fixed-partition consumers. The
 * embedded mode runs on it, and the broker contract suite holds it to the Kafka adapter's
 * behaviour. Nothing is ever deleted (no retention): it lives as long as the process.
 */
import { withTimeout } from "../../async/index.ts";
import { ErrorCode, TetherError } from "../../errors/index.ts";
import type { Logger } from "../../log/index.ts";
import { Dispatcher } from "../dispatch.ts";
import { OffsetSaver } from "../offsets.ts";
import type {
  Broker,
  BrokerAdmin,
  DeliveryReport,
  GroupConsumer,
  GroupConsumerOptions,
  IncomingMessage,
  MessageHandler,
  MessageHeaders,
  OutgoingMessage,
  PartitionConsumer,
  PartitionConsumerOptions,
  Producer,
  TopicSpec,
} from "../types.ts";
import { partitionForKey } from "./murmur2.ts";

export { murmur2, partitionForKey, toPositive } from "./murmur2.ts";

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

interface StoredRecord {
  readonly key: string | null;
  readonly value: Buffer;
  readonly headers: MessageHeaders;
  readonly timestamp: number;
}

/**
 * One partition's log. Old records are dropped by the topic's `retention.ms` and by a count
 * cap, so a long-running embedded process does not grow without bound; offsets keep counting.
 */
class PartitionLog {
  readonly topic: string;
  readonly partition: number;
  readonly #retentionMs: number;
  readonly #maxRecords: number;
  #records: StoredRecord[] = [];
  /** Index in `#records` of the oldest retained record. */
  #head = 0;
  /** Offset of `#records[0]`. */
  #base = 0;
  readonly #listeners = new Set<() => void>();

  constructor(topic: string, partition: number, retentionMs: number, maxRecords: number) {
    this.topic = topic;
    this.partition = partition;
    this.#retentionMs = retentionMs;
    this.#maxRecords = maxRecords;
  }

  /** Offset of the oldest record still held. */
  start(): number {
    return this.#base + this.#head;
  }

  /** Offset the next record will get. */
  end(): number {
    return this.#base + this.#records.length;
  }

  append(record: StoredRecord): number {
    const offset = this.end();
    this.#records.push(record);
    this.#trim(record.timestamp);
    for (const listener of this.#listeners) listener();
    return offset;
  }

  /** The record at `offset`, which must lie in [start(), end()). */
  read(offset: number): IncomingMessage {
    const record = this.#records[offset - this.#base]!;
    return {
      topic: this.topic,
      partition: this.partition,
      offset: String(offset),
      key: record.key,
      value: Buffer.from(record.value),
      headers: record.headers,
      timestamp: record.timestamp,
    };
  }

  /** Calls `listener` on every append until the returned function is called. */
  listen(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #trim(now: number): void {
    const records = this.#records;
    while (records.length - this.#head > this.#maxRecords) this.#head += 1;
    if (this.#retentionMs >= 0) {
      const cutoff = now - this.#retentionMs;
      while (this.#head < records.length - 1 && records[this.#head]!.timestamp < cutoff) this.#head += 1;
    }
    // Compacts now and then rather than shifting on every append.
    if (this.#head > 1024 && this.#head * 2 > records.length) {
      this.#records = records.slice(this.#head);
      this.#base += this.#head;
      this.#head = 0;
    }
  }
}

interface TopicState {
  readonly name: string;
  readonly partitions: readonly PartitionLog[];
}

/** What the group coordinator needs from a member. */
interface GroupMember {
  readonly id: string;
  readonly topics: readonly string[];
  /** Partitions owned now, as `topic:partition`. */
  readonly owned: Set<string>;
  /** Stops fetching `ids`, waits for their running handlers, commits their final positions. */
  revoke(ids: readonly string[]): Promise<void>;
  /** Starts fetching `ids` from the group's committed offsets. */
  assign(ids: readonly string[]): void;
}

interface GroupState {
  readonly id: string;
  readonly committed: Map<string, number>;
  readonly members: GroupMember[];
  chain: Promise<void>;
  nextMemberId: number;
}

function partitionId(topic: string, partition: number): string {
  return `${topic}:${partition}`;
}

function splitPartitionId(id: string): { topic: string; partition: number } {
  const separator = id.lastIndexOf(":");
  return { topic: id.slice(0, separator), partition: Number(id.slice(separator + 1)) };
}

/** The shared state behind one {@link MemoryBroker}: its topics, groups and offsets. */
class Cluster {
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

  ensureTopics(specs: readonly TopicSpec[]): void {
    const created: string[] = [];
    for (const spec of specs) {
      if (this.#topics.has(spec.name)) continue;
      if (!Number.isInteger(spec.partitions) || spec.partitions < 1) {
        throw new TetherError(ErrorCode.InvalidArgument, `topic ${spec.name} needs at least one partition`);
      }
      const retention = Number(spec.config?.["retention.ms"] ?? -1);
      const retentionMs = Number.isFinite(retention) ? retention : -1;
      const partitions = Array.from(
        { length: spec.partitions },
        (_, index) => new PartitionLog(spec.name, index, retentionMs, this.maxRecords),
      );
      this.#topics.set(spec.name, { name: spec.name, partitions });
      created.push(spec.name);
    }
    // Members subscribed to a topic before it existed get its partitions now.
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

interface Cursor {
  readonly log: PartitionLog;
  next: number;
  readonly unlisten: () => void;
}

/** Feeds a dispatcher from partition logs, waking on appends and pausing when it is full. */
class Fetcher {
  readonly #dispatcher: Dispatcher;
  readonly #maxPending: number;
  readonly #cursors = new Map<string, Cursor>();
  #scheduled = false;
  #stopped = false;

  constructor(dispatcher: Dispatcher, maxPending: number) {
    this.#dispatcher = dispatcher;
    this.#maxPending = maxPending;
  }

  add(log: PartitionLog, start: number): void {
    if (this.#stopped) return;
    const id = partitionId(log.topic, log.partition);
    this.#cursors.get(id)?.unlisten();
    const unlisten = log.listen(() => this.schedule());
    this.#cursors.set(id, { log, next: start, unlisten });
    this.schedule();
  }

  remove(id: string): void {
    const cursor = this.#cursors.get(id);
    if (cursor === undefined) return;
    cursor.unlisten();
    this.#cursors.delete(id);
  }

  stop(): void {
    this.#stopped = true;
    for (const id of [...this.#cursors.keys()]) this.remove(id);
  }

  schedule(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#fetch();
    });
  }

  #fetch(): void {
    let progress = true;
    while (progress && !this.#stopped) {
      progress = false;
      for (const cursor of this.#cursors.values()) {
        // A slice per partition per round keeps one busy partition from starving the rest.
        let budget = 64;
        if (cursor.next < cursor.log.start()) cursor.next = cursor.log.start();
        while (budget > 0 && cursor.next < cursor.log.end()) {
          if (this.#stopped || this.#dispatcher.pending() >= this.#maxPending) return;
          this.#dispatcher.push(cursor.log.read(cursor.next));
          cursor.next += 1;
          budget -= 1;
          progress = true;
        }
      }
    }
  }
}

class MemoryProducer implements Producer {
  readonly #cluster: Cluster;
  #queue: Array<{
    readonly log: PartitionLog;
    readonly record: StoredRecord;
    readonly resolve: (report: DeliveryReport) => void;
  }> = [];
  #scheduled = false;
  readonly #flushWaiters: Array<() => void> = [];
  #closed = false;

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
  }

  async connect(): Promise<void> {
    if (this.#cluster.failing) throw new TetherError(ErrorCode.Unavailable, "broker unavailable");
  }

  send(message: OutgoingMessage): Promise<DeliveryReport> {
    try {
      if (this.#closed) throw new TetherError(ErrorCode.Closed, "producer is closed");
      if (this.#cluster.failing) throw new TetherError(ErrorCode.Unavailable, "broker unavailable");
      const topic = this.#cluster.requireTopic(message.topic);
      const partition = this.#cluster.choosePartition(message, topic);
      const record: StoredRecord = {
        key: message.key ?? null,
        value: typeof message.value === "string" ? Buffer.from(message.value, "utf8") : Buffer.from(message.value),
        headers: Object.freeze({ ...message.headers }),
        timestamp: Date.now(),
      };
      return new Promise((resolve) => {
        this.#queue.push({ log: topic.partitions[partition]!, record, resolve });
        this.#schedule();
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async flush(timeoutMs: number): Promise<void> {
    if (this.#queue.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<boolean>((resolve) => this.#flushWaiters.push(() => resolve(true)));
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const flushed = await Promise.race([done, late]);
    clearTimeout(timer);
    if (!flushed) throw new TetherError(ErrorCode.Timeout, `flush did not finish within ${timeoutMs} ms`);
  }

  queued(): number {
    return this.#queue.length;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.flush(5000);
  }

  // Delivery happens on a later turn of the event loop, as with a real broker, so that no
  // caller comes to depend on a send being acknowledged synchronously.
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      const batch = this.#queue;
      this.#queue = [];
      for (const item of batch) {
        const offset = item.log.append(item.record);
        item.resolve({ topic: item.log.topic, partition: item.log.partition, offset: String(offset) });
      }
      if (this.#queue.length === 0) for (const resolve of this.#flushWaiters.splice(0)) resolve();
    });
  }
}

function checkStartable(closed: boolean, started: boolean): void {
  if (closed) throw new TetherError(ErrorCode.Closed, "consumer is closed");
  if (started) throw new TetherError(ErrorCode.InvalidArgument, "consumer already started");
}

/**
 * What a started consumer runs: the dispatcher, the fetcher feeding it, and commits of handled
 * positions, at most one per turn of the event loop.
 */
class Consumption {
  readonly dispatcher: Dispatcher;
  readonly fetcher: Fetcher;
  readonly #commit: () => Promise<void> | undefined;
  #commitScheduled = false;

  constructor(
    cluster: Cluster,
    options: { concurrency?: number; orderBy?: "key" | "partition"; maxRetryDelayMs?: number },
    handler: MessageHandler,
    commit: () => Promise<void> | undefined,
  ) {
    this.#commit = commit;
    this.dispatcher = new Dispatcher({
      handler: async (message) => {
        // The dispatcher updates its counters after the handler (and its durable effect)
        // settles; look after that.
        const after = (): void => {
          setImmediate(() => {
            this.fetcher.schedule();
            this.#scheduleCommit();
          });
        };
        let outcome: Awaited<ReturnType<MessageHandler>>;
        try {
          outcome = await handler(message);
        } finally {
          after();
        }
        if (outcome === undefined) return undefined;
        return { durable: outcome.durable.finally(after) };
      },
      concurrency: options.concurrency,
      orderBy: options.orderBy,
      ...(options.maxRetryDelayMs === undefined ? {} : { maxRetryDelayMs: options.maxRetryDelayMs }),
      onError: (error, message, attempt) => {
        cluster.logger?.warn(
          { err: error, topic: message.topic, partition: message.partition, offset: message.offset, attempt },
          "handler failed; retrying",
        );
      },
    });
    this.fetcher = new Fetcher(this.dispatcher, cluster.maxPending);
  }

  /**
   * Stops fetching, waits up to `timeoutMs` for the handlers in flight, then commits. A save
   * that fails was logged where it failed, and one that hangs is given up after 5 s, as the
   * Kafka adapter's final commit is; closing goes on either way.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.fetcher.stop();
    this.dispatcher.close();
    await this.dispatcher.drain(timeoutMs);
    const saving = this.#commit();
    if (saving !== undefined) await withTimeout(saving, 5000, "final offset save").catch(() => {});
  }

  #scheduleCommit(): void {
    if (this.#commitScheduled) return;
    this.#commitScheduled = true;
    setImmediate(() => {
      this.#commitScheduled = false;
      void this.#commit()?.catch(() => {});
    });
  }
}

const defaultCloseTimeoutMs = 10_000;

class MemoryGroupConsumer implements GroupConsumer {
  readonly #cluster: Cluster;
  readonly #options: GroupConsumerOptions;
  readonly #group: GroupState;
  readonly #member: GroupMember;
  readonly #owned = new Set<string>();
  #run: Consumption | undefined;
  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(cluster: Cluster, options: GroupConsumerOptions) {
    this.#cluster = cluster;
    this.#options = { ...options, topics: [...options.topics] };
    this.#group = cluster.group(options.groupId);
    this.#group.nextMemberId += 1;
    this.#member = {
      id: `${options.groupId}-${this.#group.nextMemberId}`,
      topics: this.#options.topics,
      owned: this.#owned,
      revoke: (ids) => this.#revoke(ids),
      assign: (ids) => this.#assign(ids),
    };
  }

  async start(handler: MessageHandler): Promise<void> {
    checkStartable(this.#closed, this.#started);
    this.#started = true;
    this.#run = new Consumption(this.#cluster, this.#options, handler, () => {
      this.#commit();
      return undefined;
    });
    await this.#cluster.join(this.#group, this.#member);
  }

  assignment(): readonly string[] {
    return [...this.#owned].sort();
  }

  close(timeoutMs = defaultCloseTimeoutMs): Promise<void> {
    this.#closing ??= this.#close(timeoutMs);
    return this.#closing;
  }

  async #close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    if (this.#run === undefined) return;
    await this.#run.stop(timeoutMs);
    this.#owned.clear();
    await this.#cluster.leave(this.#group, this.#member);
  }

  #assign(ids: readonly string[]): void {
    if (this.#closed) return;
    for (const id of ids) {
      const { topic, partition } = splitPartitionId(id);
      const log = this.#cluster.log(topic, partition);
      if (log === undefined) continue;
      const committed = this.#cluster.committed(this.#group.id, topic, partition);
      const start = committed ?? (this.#options.fromBeginning === false ? log.end() : log.start());
      this.#owned.add(id);
      this.#run?.fetcher.add(log, start);
    }
  }

  async #revoke(ids: readonly string[]): Promise<void> {
    const run = this.#run;
    await Promise.all(
      ids.map(async (id) => {
        this.#owned.delete(id);
        run?.fetcher.remove(id);
        if (run === undefined) return;
        const { topic, partition } = splitPartitionId(id);
        // A handler that never finishes must not hold the whole group's rebalance, as Kafka's
        // rebalance timeout would not; its partition moves on uncommitted (at-least-once).
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<number>((resolve) => {
          timer = setTimeout(() => resolve(-1), this.#cluster.rebalanceTimeoutMs);
        });
        const position = await Promise.race([run.dispatcher.revoke(topic, partition), late]);
        clearTimeout(timer);
        if (position >= 0) this.#cluster.commit(this.#group.id, topic, partition, position);
      }),
    );
  }

  #commit(): void {
    const dispatcher = this.#run?.dispatcher;
    if (dispatcher === undefined) return;
    for (const id of this.#owned) {
      const { topic, partition } = splitPartitionId(id);
      const position = dispatcher.position(topic, partition);
      if (position >= 0) this.#cluster.commit(this.#group.id, topic, partition, position);
    }
  }
}

class MemoryPartitionConsumer implements PartitionConsumer {
  readonly #cluster: Cluster;
  readonly #options: PartitionConsumerOptions;
  readonly #saver: OffsetSaver | undefined;
  #run: Consumption | undefined;
  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(cluster: Cluster, options: PartitionConsumerOptions) {
    this.#cluster = cluster;
    this.#options = { ...options };
    this.#saver =
      options.offsets === undefined
        ? undefined
        : new OffsetSaver(
            options.offsets,
            cluster.logger?.child({ groupId: options.groupId, topic: options.topic, partition: options.partition }),
          );
  }

  async start(handler: MessageHandler): Promise<void> {
    checkStartable(this.#closed, this.#started);
    const { topic, partition } = this.#options;
    const log = this.#cluster.log(topic, partition);
    if (log === undefined) {
      this.#cluster.requireTopic(topic);
      throw new TetherError(ErrorCode.NotFound, `topic ${topic} has no partition ${partition}`, {
        details: { topic, partition },
      });
    }
    this.#started = true;
    const stored = await this.#storedOffset(log);
    if (this.#closed) return;
    this.#run = new Consumption(this.#cluster, this.#options, handler, () => this.#commit());
    const start = stored ?? (this.#options.fallback === "latest" ? log.end() : log.start());
    this.#run.fetcher.add(log, start);
  }

  /**
   * The group's committed offset, or what `offsets` loads; a loaded offset outside the log
   * counts as none, as Kafka resets an out-of-range position to the fallback.
   */
  async #storedOffset(log: PartitionLog): Promise<number | undefined> {
    const { topic, partition, groupId, offsets } = this.#options;
    if (offsets === undefined) return this.#cluster.committed(groupId, topic, partition);
    const loaded = await offsets.load();
    if (loaded === null) return undefined;
    if (!Number.isSafeInteger(loaded) || loaded < 0) {
      throw new TetherError(ErrorCode.InvalidArgument, `stored offset ${loaded} is not an offset`);
    }
    return loaded < log.start() || loaded > log.end() ? undefined : loaded;
  }

  async commit(): Promise<void> {
    await this.#commit();
  }

  close(timeoutMs = defaultCloseTimeoutMs): Promise<void> {
    this.#closing ??= this.#close(timeoutMs);
    return this.#closing;
  }

  async #close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    await this.#run?.stop(timeoutMs);
  }

  #commit(): Promise<void> | undefined {
    const { topic, partition, groupId } = this.#options;
    const position = this.#run?.dispatcher.position(topic, partition) ?? -1;
    if (position < 0) return undefined;
    if (this.#saver !== undefined) return this.#saver.save(position);
    this.#cluster.commit(groupId, topic, partition, position);
    return undefined;
  }
}

class MemoryAdmin implements BrokerAdmin {
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

/** A broker held in this process's memory; each instance is its own cluster. */
export class MemoryBroker implements Broker {
  readonly kind = "memory" as const;
  readonly #cluster: Cluster;

  constructor(options: MemoryBrokerOptions = {}) {
    this.#cluster = new Cluster(options);
  }

  producer(): Producer {
    return new MemoryProducer(this.#cluster);
  }

  groupConsumer(options: GroupConsumerOptions): GroupConsumer {
    return new MemoryGroupConsumer(this.#cluster, options);
  }

  partitionConsumer(options: PartitionConsumerOptions): PartitionConsumer {
    return new MemoryPartitionConsumer(this.#cluster, options);
  }

  admin(): BrokerAdmin {
    return new MemoryAdmin(this.#cluster);
  }

  /**
   * Test hook: while on, producers reject with `unavailable` and `ping` fails, so services'
   * error paths can be exercised without a real outage.
   */
  fail(on: boolean): void {
    this.#cluster.failing = on;
  }
}
