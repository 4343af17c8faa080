import { ErrorCode, TetherError } from "../../errors/index.ts";
import { OffsetSaver } from "../offsets.ts";
import type {
  GroupConsumer,
  GroupConsumerOptions,
  MessageHandler,
  PartitionConsumer,
  PartitionConsumerOptions,
} from "../types.ts";
import type { Cluster, GroupMember, GroupState } from "./cluster.ts";
import { Consumption, checkStartable, defaultCloseTimeoutMs } from "./consumption.ts";
import { type PartitionLog, splitPartitionId } from "./log.ts";

export class MemoryGroupConsumer implements GroupConsumer {
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

  async lag(): Promise<number> {
    if (!this.#started || this.#closed) throw new TetherError(ErrorCode.Closed, "group consumer is not running");
    let lag = 0;
    for (const topic of this.#options.topics) lag += this.#cluster.groupLag(this.#options.groupId, topic);
    return lag;
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

export class MemoryPartitionConsumer implements PartitionConsumer {
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
