/** Something corked until the end of the current event-loop turn. */
export interface Corked {
  uncork(): void;
}

/** Writes of one event-loop turn go out together: sockets are corked until the next tick. */
export class WriteBatch {
  #corked: Corked[] = [];
  #scheduled = false;

  add(corked: Corked): void {
    this.#corked.push(corked);
    if (this.#scheduled) return;
    this.#scheduled = true;
    process.nextTick(this.#flush);
  }

  readonly #flush = (): void => {
    const list = this.#corked;
    this.#corked = [];
    this.#scheduled = false;
    for (const corked of list) corked.uncork();
  };
}
