/**
 * Rules both registry adapters follow the same way: use after close, page sizes, outbox order.
 * The adapters import this; it is not part of the registry's public surface.
 */
import { ErrorCode, TetherError } from "../errors/index.ts";
import type { OutboxEntry } from "./types.ts";

/** Guards every store of one registry against use after close. */
export class ClosedGuard {
  closed = false;

  check(): void {
    if (this.closed) throw new TetherError(ErrorCode.Closed, "registry is closed");
  }
}

/** The page size a listing asks for: 100 when omitted; anything but a positive whole number is refused. */
export function pageLimit(limit: number | undefined): number {
  const size = limit ?? 100;
  if (!Number.isInteger(size) || size < 1) {
    throw new TetherError(ErrorCode.InvalidArgument, "page limit must be a positive whole number");
  }
  return size;
}

/** Sorts outbox entries oldest first, ties by message id, and keeps the first `limit` when given. */
export function outboxOrder<T extends OutboxEntry>(entries: T[], limit: number | undefined): T[] {
  entries.sort(
    (a, b) => a.createdAt - b.createdAt || (a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0),
  );
  return limit === undefined ? entries : entries.slice(0, Math.max(0, limit));
}

/** Refuses a committed offset that is not a whole number of at least 0 (a Kafka offset). */
export function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new TetherError(ErrorCode.InvalidArgument, "a committed offset must be a whole number of at least 0");
  }
}

/** Refuses a hello attempt number that is not a whole number of at least 1. */
export function checkAttempt(attempt: number): void {
  if (!Number.isSafeInteger(attempt) || attempt < 1) {
    throw new TetherError(ErrorCode.InvalidArgument, "a hello attempt must be a whole number of at least 1");
  }
}
