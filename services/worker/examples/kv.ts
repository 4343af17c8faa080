import { HandlerError } from "../handler-error.ts";
import type { HandlerRequest, Worker } from "../worker.ts";

/** A stored value and its version (1 on the first write, then +1 per write). */
export interface KvItem {
  readonly value: unknown;
  readonly version: number;
}

export interface KvPut {
  /** The device's own key space: devices never see each other's keys. */
  readonly deviceId: string;
  readonly key: string;
  readonly value: unknown;
  /** Write only if the current version is this one (0: only if the key is absent). */
  readonly ifVersion?: number;
  /**
   * The request's idempotency key. The store records it with the write, so that the same
   * request applied twice (a retry, a redelivery) writes once and reports the first result.
   */
  readonly requestKey: string;
}

export type KvPutResult =
  | { readonly status: "written"; readonly version: number }
  /** This very request was applied already; `version` is the one it wrote. */
  | { readonly status: "replayed"; readonly version: number }
  /** `ifVersion` did not match; `version` is the current one (0 when absent). */
  | { readonly status: "version_mismatch"; readonly version: number };

/**
 * The backend service the example handlers call: a small key-value store. A stand-in for
 * whatever a real handler talks to; adapters: DynamoDB (`kv-dynamodb.ts`) and memory.
 * Failures of the store itself reject with anything but a `HandlerError`, so the worker
 * retries them.
 */
export interface KvStore {
  get(deviceId: string, key: string): Promise<KvItem | null>;
  put(put: KvPut): Promise<KvPutResult>;
  close(): Promise<void>;
}

interface MemoryRow {
  value: unknown;
  version: number;
  lastRequest: string;
}

/** A `KvStore` in a Map; for the embedded mode and tests. */
export class MemoryKvStore implements KvStore {
  readonly #rows = new Map<string, MemoryRow>();

  async get(deviceId: string, key: string): Promise<KvItem | null> {
    const row = this.#rows.get(`${deviceId}\u0000${key}`);
    return row === undefined ? null : { value: structuredClone(row.value), version: row.version };
  }

  async put(put: KvPut): Promise<KvPutResult> {
    const id = `${put.deviceId}\u0000${put.key}`;
    const row = this.#rows.get(id);
    if (row !== undefined && row.lastRequest === put.requestKey) return { status: "replayed", version: row.version };
    const current = row?.version ?? 0;
    if (put.ifVersion !== undefined && put.ifVersion !== current)
      return { status: "version_mismatch", version: current };
    const version = current + 1;
    this.#rows.set(id, { value: structuredClone(put.value), version, lastRequest: put.requestKey });
    return { status: "written", version };
  }

  async close(): Promise<void> {
    this.#rows.clear();
  }
}

const KEY_PATTERN = /^[A-Za-z0-9._:/-]{1,256}$/;
/** Values are device JSON; bounded so one device cannot fill the table. */
const MAX_VALUE_BYTES = 32 * 1024;

function readKey(body: unknown): string {
  const key = typeof body === "object" && body !== null ? (body as { key?: unknown }).key : undefined;
  if (typeof key !== "string" || !KEY_PATTERN.test(key)) {
    throw new HandlerError("invalid_input", "body.key must be 1 to 256 characters of A-Z a-z 0-9 . _ : / -");
  }
  return key;
}

/**
 * `kv.get` `{key}` answers `{key, value, version}` or `not_found`; `kv.put` `{key, value,
 * ifVersion?}` answers `{key, version}`, or `version_mismatch` (with the current version in the
 * message) when `ifVersion` is stale. `kv.put` passes the request's idempotency key to the
 * store, whose conditional write makes a repeated request a no-op that answers like the first.
 */
export function registerKv(worker: Worker, store: KvStore): Worker {
  worker.handle("kv.get", async (request: HandlerRequest) => {
    const key = readKey(request.body);
    const item = await store.get(request.deviceId, key);
    if (item === null) throw new HandlerError("not_found", `no value for key ${key}`);
    return { key, value: item.value, version: item.version };
  });
  worker.handle("kv.put", async (request: HandlerRequest) => {
    const key = readKey(request.body);
    const body = request.body as { value?: unknown; ifVersion?: unknown };
    if (body.value === undefined) throw new HandlerError("invalid_input", "body.value is required");
    const size = Buffer.byteLength(JSON.stringify(body.value));
    if (size > MAX_VALUE_BYTES) throw new HandlerError("invalid_input", `body.value is over ${MAX_VALUE_BYTES} bytes`);
    const ifVersion = body.ifVersion;
    if (ifVersion !== undefined && (typeof ifVersion !== "number" || !Number.isInteger(ifVersion) || ifVersion < 0)) {
      throw new HandlerError("invalid_input", "body.ifVersion must be a whole number >= 0");
    }
    const result = await store.put({
      deviceId: request.deviceId,
      key,
      value: body.value,
      requestKey: request.idempotencyKey,
      ...(ifVersion === undefined ? {} : { ifVersion }),
    });
    if (result.status === "version_mismatch") {
      throw new HandlerError("version_mismatch", `key ${key} is at version ${result.version}`);
    }
    if (result.status === "replayed") request.log.debug({ key }, "kv.put replayed; already applied");
    return { key, version: result.version };
  });
  return worker;
}
