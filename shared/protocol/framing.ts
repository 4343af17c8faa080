/**
 * Streaming NDJSON framing: turns a byte stream into lines, whatever the read boundaries are,
 * with the maximum frame size enforced while reading.
 */

const LF = 10;
const CR = 13;
const SPACE = 32;
const TAB = 9;

/** The smallest buffer allocated for a partial line; it grows by doubling up to the limit. */
const MIN_PENDING_CAPACITY = 256;

export interface LineSplitterOptions {
  /** The longest line accepted, in bytes, without its `\n` or `\r\n` ending. */
  readonly maxFrameBytes: number;
  /**
   * Called once per complete line, without its ending. The buffer is the caller's to keep: the
   * splitter never writes into it again (it is either a view of the pushed chunk or a buffer the
   * splitter hands over).
   */
  readonly onLine: (line: Buffer) => void;
  /**
   * Called once when the current line grows past `maxFrameBytes`. Everything pushed afterwards
   * is dropped until {@link LineSplitter.reset} (framing is lost; the caller closes).
   */
  readonly onOversize: () => void;
  /**
   * Blank lines (empty, or only spaces and tabs) are not frames. When true (the default) they
   * are dropped without calling `onLine`, so a person typing with `nc` can press Enter freely.
   */
  readonly skipBlankLines?: boolean;
}

/**
 * Splits a byte stream into `\n`-terminated lines (a trailing `\r` is removed).
 *
 * Memory stays bounded: a partial line is buffered only up to `maxFrameBytes + 1` bytes (the
 * extra byte is a possible `\r` of a `\r\n` ending); past that `onOversize` fires and the rest of
 * the stream is dropped. A line that sits whole in one chunk is passed on as a view of that chunk,
 * without a copy.
 */
export class LineSplitter {
  #maxFrameBytes: number;
  readonly #onLine: (line: Buffer) => void;
  readonly #onOversize: () => void;
  readonly #skipBlank: boolean;
  /** Bytes of the current, unfinished line; `undefined` when none are held. */
  #pending: Buffer | undefined;
  #pendingLength = 0;
  #dropping = false;

  constructor(options: LineSplitterOptions) {
    if (!Number.isInteger(options.maxFrameBytes) || options.maxFrameBytes < 1) {
      throw new RangeError(`maxFrameBytes must be a positive integer, got ${String(options.maxFrameBytes)}`);
    }
    this.#maxFrameBytes = options.maxFrameBytes;
    this.#onLine = options.onLine;
    this.#onOversize = options.onOversize;
    this.#skipBlank = options.skipBlankLines ?? true;
  }

  /**
   * Changes the longest line accepted from here on (the edge allows a small one until a hello
   * was read). Lines already held count against the new limit when they grow.
   */
  setMaxFrameBytes(maxFrameBytes: number): void {
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1) {
      throw new RangeError(`maxFrameBytes must be a positive integer, got ${String(maxFrameBytes)}`);
    }
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes of an unfinished line currently held (never more than `maxFrameBytes + 1`). */
  get pendingBytes(): number {
    return this.#pendingLength;
  }

  /** True once an oversize line was seen or {@link stop} was called, until {@link reset}. */
  get stopped(): boolean {
    return this.#dropping;
  }

  /** Feeds the next bytes of the stream. Calls `onLine` for every line it completes. */
  push(chunk: Buffer): void {
    if (this.#dropping) return;
    const length = chunk.length;
    let start = 0;
    while (start < length) {
      const newline = chunk.indexOf(LF, start);
      if (newline === -1) {
        this.#keep(chunk, start, length);
        return;
      }
      let line: Buffer;
      if (this.#pendingLength === 0) {
        line = chunk.subarray(start, newline);
      } else {
        if (!this.#append(chunk, start, newline)) return;
        line = this.#takePending();
      }
      start = newline + 1;
      this.#emit(line);
      // onLine may have called stop() or reset(); stop() means the rest is not wanted.
      if (this.#dropping) return;
    }
  }

  /** Drops everything held and starts afresh (also after an oversize line). */
  reset(): void {
    this.#pending = undefined;
    this.#pendingLength = 0;
    this.#dropping = false;
  }

  /** Drops everything held and everything pushed later, until {@link reset}. */
  stop(): void {
    this.#pending = undefined;
    this.#pendingLength = 0;
    this.#dropping = true;
  }

  #emit(raw: Buffer): void {
    let end = raw.length;
    if (end > 0 && raw[end - 1] === CR) end -= 1;
    if (end > this.#maxFrameBytes) {
      this.#oversize();
      return;
    }
    const line = end === raw.length ? raw : raw.subarray(0, end);
    if (this.#skipBlank && isBlank(line)) return;
    this.#onLine(line);
  }

  /** Holds bytes of an unfinished line, or reports oversize as soon as it is certain. */
  #keep(chunk: Buffer, from: number, to: number): void {
    if (!this.#append(chunk, from, to)) return;
    const held = this.#pendingLength;
    const limit = this.#maxFrameBytes;
    // Up to limit + 1 bytes may be held, when the last one is a \r that a \n may yet follow.
    if (held > limit && !(held === limit + 1 && this.#pending![held - 1] === CR)) {
      this.#oversize();
    }
  }

  /** Appends chunk[from, to) to the pending line; false (after reporting) when it is too long. */
  #append(chunk: Buffer, from: number, to: number): boolean {
    const count = to - from;
    if (count === 0) return true;
    const needed = this.#pendingLength + count;
    // A line that ends here may carry one \r, hence the + 1.
    if (needed > this.#maxFrameBytes + 1) {
      this.#oversize();
      return false;
    }
    let pending = this.#pending;
    if (pending === undefined || pending.length < needed) {
      // A first piece is held at its own size (most partial lines are completed by the next
      // read, and a socket that stops mid-line then holds no slack); growth doubles.
      let capacity = pending === undefined ? needed : Math.max(MIN_PENDING_CAPACITY, pending.length * 2);
      while (capacity < needed) capacity *= 2;
      capacity = Math.min(capacity, this.#maxFrameBytes + 1);
      const grown = Buffer.allocUnsafe(capacity);
      if (pending !== undefined) pending.copy(grown, 0, 0, this.#pendingLength);
      pending = grown;
      this.#pending = grown;
    }
    chunk.copy(pending, this.#pendingLength, from, to);
    this.#pendingLength = needed;
    return true;
  }

  /** Hands the pending line over to the caller; the splitter never touches that buffer again. */
  #takePending(): Buffer {
    const line = this.#pending!.subarray(0, this.#pendingLength);
    this.#pending = undefined;
    this.#pendingLength = 0;
    return line;
  }

  #oversize(): void {
    this.stop();
    this.#onOversize();
  }
}

function isBlank(line: Buffer): boolean {
  for (let i = 0; i < line.length; i++) {
    const byte = line[i];
    if (byte !== SPACE && byte !== TAB) return false;
  }
  return true;
}

/**
 * False when the first byte of `chunk` that is not JSON white space cannot start a JSON object:
 * a stream that must begin with an object (a device's hello) can be refused at its first byte.
 */
export function mayStartObject(chunk: Buffer): boolean {
  for (const byte of chunk) {
    if (byte === SPACE || byte === TAB || byte === LF || byte === CR) continue;
    return byte === 0x7b;
  }
  return true;
}
