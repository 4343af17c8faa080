import type { Logger } from "../log/index.ts";
import type { SlotOffsets } from "./types.ts";

/**
 * Hands a partition consumer's committable watermark to {@link SlotOffsets.save}: one save in
 * flight at a time, and only a watermark past the last one saved. A rejected save is logged and
 * not remembered, so the next commit offers the watermark again.
 */
export class OffsetSaver {
  readonly #offsets: SlotOffsets;
  readonly #logger: Logger | undefined;
  #saved = -1;
  #chain: Promise<void> = Promise.resolve();

  constructor(offsets: SlotOffsets, logger: Logger | undefined) {
    this.#offsets = offsets;
    this.#logger = logger;
  }

  /** Saves `next` (the next offset to read); rejects with the store's error when it refused. */
  save(next: number): Promise<void> {
    const run = this.#chain.then(() => this.#saveNow(next));
    this.#chain = run.catch(() => {});
    return run;
  }

  async #saveNow(next: number): Promise<void> {
    if (next < 0 || next <= this.#saved) return;
    try {
      await this.#offsets.save(next);
    } catch (error) {
      this.#logger?.warn({ err: error, nextOffset: next }, "saving the partition offset failed; offering it again");
      throw error;
    }
    this.#saved = next;
  }
}
