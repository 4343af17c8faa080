/**
 * A validating JSON scanner for untrusted lines. It checks a whole JSON text against the JSON
 * grammar without building values and without recursion (so no input can exhaust the stack),
 * enforces a nesting limit while it reads, and reports where each member of a top-level object
 * sits in the text. The edge uses it to read a frame's few small fields and to pass the `body`
 * on as the device's own bytes, never parsed nor re-serialized.
 */

/** The deepest nesting a frame may have (objects and arrays both count a level). */
export const MAX_JSON_DEPTH = 64;

/** Where one member of the top-level object sits: `text.subarray(start, end)` is its value. */
export interface JsonMember {
  readonly start: number;
  readonly end: number;
}

/** Outcome of {@link scanJson}. */
export type JsonScan =
  | {
      readonly ok: true;
      /** Members of the top-level object by key (a repeated key: the last one, as JSON.parse does). */
      readonly members: ReadonlyMap<string, JsonMember> | null;
      /** True when the text is an object (members is then a map). */
      readonly isObject: boolean;
    }
  | {
      readonly ok: false;
      readonly message: string;
      /** For a text refused for its nesting: the top-level members read before the limit hit. */
      readonly membersSoFar?: ReadonlyMap<string, JsonMember>;
    };

const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

const IN_OBJECT = 1;
const IN_ARRAY = 2;

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

function isDigit(byte: number): boolean {
  return byte >= ZERO && byte <= NINE;
}

function isHex(byte: number): boolean {
  return isDigit(byte) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
}

const ESCAPABLE = new Set([QUOTE, BACKSLASH, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);
const LITERALS: ReadonlyArray<readonly [number, Buffer]> = [
  [0x74, Buffer.from("true")],
  [0x66, Buffer.from("false")],
  [0x6e, Buffer.from("null")],
];

class ScanError extends Error {}

function fail(message: string): never {
  throw new ScanError(message);
}

/** Index just past the string that opens at `at` (a quote). */
function skipString(text: Buffer, at: number): number {
  let i = at + 1;
  const length = text.length;
  while (i < length) {
    const byte = text[i] as number;
    if (byte === QUOTE) return i + 1;
    if (byte < 0x20) fail("control character inside a string");
    if (byte === BACKSLASH) {
      const next = text[i + 1];
      if (next === undefined) break;
      if (next === 0x75) {
        for (let k = 2; k < 6; k++) {
          const hex = text[i + k];
          if (hex === undefined || !isHex(hex)) fail("bad \\u escape");
        }
        i += 6;
        continue;
      }
      if (!ESCAPABLE.has(next)) fail("bad escape in a string");
      i += 2;
      continue;
    }
    i += 1;
  }
  return fail("unterminated string");
}

/** Index just past the number that starts at `at`. */
function skipNumber(text: Buffer, at: number): number {
  let i = at;
  if (text[i] === MINUS) i += 1;
  const first = text[i];
  if (first === undefined || !isDigit(first)) fail("bad number");
  i += 1;
  if (first !== ZERO) while (isDigit(text[i] ?? -1)) i += 1;
  if (text[i] === DOT) {
    i += 1;
    if (!isDigit(text[i] ?? -1)) fail("bad number");
    while (isDigit(text[i] ?? -1)) i += 1;
  }
  const e = text[i];
  if (e === 0x65 || e === 0x45) {
    i += 1;
    if (text[i] === PLUS || text[i] === MINUS) i += 1;
    if (!isDigit(text[i] ?? -1)) fail("bad number");
    while (isDigit(text[i] ?? -1)) i += 1;
  }
  return i;
}

function skipLiteral(text: Buffer, at: number): number {
  const byte = text[at];
  for (const [first, word] of LITERALS) {
    if (byte !== first) continue;
    if (text.length - at >= word.length && text.compare(word, 0, word.length, at, at + word.length) === 0) {
      return at + word.length;
    }
    break;
  }
  return fail("unexpected character");
}

function skipSpace(text: Buffer, at: number): number {
  let i = at;
  while (i < text.length && isSpace(text[i] as number)) i += 1;
  return i;
}

function keyOf(text: Buffer, start: number, end: number): string {
  // A key with escapes is decoded the way JSON.parse would; a plain one is its bytes.
  const raw = text.subarray(start, end);
  return raw.includes(BACKSLASH)
    ? (JSON.parse(raw.toString("utf8")) as string)
    : raw.toString("utf8", 1, raw.length - 1);
}

/**
 * Scans one JSON text (UTF-8 bytes, already known to be valid UTF-8). Never throws and never
 * recurses; cost is one pass over the bytes.
 */
export function scanJson(text: Buffer, maxDepth: number = MAX_JSON_DEPTH): JsonScan {
  try {
    return scan(text, maxDepth);
  } catch (error) {
    if (error instanceof ScanError) return { ok: false, message: `frame is not valid JSON: ${error.message}` };
    throw error;
  }
}

function scan(text: Buffer, maxDepth: number): JsonScan {
  const stack = new Uint8Array(maxDepth + 1);
  let depth = 0;
  let members: Map<string, JsonMember> | null = null;
  let memberKey: string | undefined;
  let memberStart = 0;
  let i = skipSpace(text, 0);
  const isObject = text[i] === OPEN_OBJECT;
  // Each turn reads one value, then the punctuation after it up to where the next value starts.
  for (;;) {
    i = skipSpace(text, i);
    const byte = text[i];
    if (byte === undefined) fail("unexpected end");
    if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
      if (depth >= maxDepth) {
        const message = `frame nests deeper than ${maxDepth} levels`;
        return members === null ? { ok: false, message } : { ok: false, message, membersSoFar: members };
      }
      stack[++depth] = byte === OPEN_OBJECT ? IN_OBJECT : IN_ARRAY;
      if (depth === 1 && byte === OPEN_OBJECT) members = new Map();
      i = skipSpace(text, i + 1);
      const close = byte === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY;
      if (text[i] !== close) {
        if (byte === OPEN_OBJECT) i = readKey(i);
        continue;
      }
      i += 1;
      depth -= 1;
    } else if (byte === QUOTE) {
      i = skipString(text, i);
    } else if (byte === MINUS || isDigit(byte)) {
      i = skipNumber(text, i);
    } else {
      i = skipLiteral(text, i);
    }
    // A value ended at i; close every container that ends here.
    for (;;) {
      if (depth === 1 && memberKey !== undefined) {
        members?.set(memberKey, { start: memberStart, end: i });
        memberKey = undefined;
      }
      if (depth === 0) {
        if (skipSpace(text, i) !== text.length) fail("unexpected data after the value");
        return { ok: true, members, isObject };
      }
      i = skipSpace(text, i);
      const next = text[i];
      const container = stack[depth];
      if (next === COMMA) {
        i += 1;
        if (container === IN_OBJECT) i = readKey(skipSpace(text, i));
        break;
      }
      if ((container === IN_OBJECT && next === CLOSE_OBJECT) || (container === IN_ARRAY && next === CLOSE_ARRAY)) {
        i += 1;
        depth -= 1;
        continue;
      }
      fail(next === undefined ? "unexpected end" : "expected , or a closing bracket");
    }
  }

  /** Reads `"key" :` at `at`; returns where the member's value starts. */
  function readKey(at: number): number {
    if (text[at] !== QUOTE) fail("expected a string key");
    const end = skipString(text, at);
    const colon = skipSpace(text, end);
    if (text[colon] !== COLON) fail("expected :");
    const start = skipSpace(text, colon + 1);
    if (depth === 1) {
      memberKey = keyOf(text, at, end);
      memberStart = start;
    }
    return start;
  }
}
