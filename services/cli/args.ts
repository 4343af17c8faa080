/** Argument parsing shared by the commands. */

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { SignJWT } from "jose";
import { hmacToken, jwtHs256Key } from "../../shared/auth/index.ts";
import { isValidDeviceId } from "../../shared/protocol/index.ts";
import type { TetherClientOptions } from "../../shared/sdk/index.ts";
import { type CliIo, UsageError } from "./io.ts";
import { suggest } from "./suggest.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

export interface Parsed {
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly positionals: readonly string[];
}

/**
 * Parses a command's arguments. Every option must be one of `options`: an unknown one, a string
 * option without its value or a flag given a value is a usage error that says so in one line
 * and names the option meant, when one is close ("did you mean --port?").
 */
export function parse(args: readonly string[], options: Options): Parsed {
  // Lenient, so that the checks below can word the errors; nothing unchecked gets through.
  const result = parseArgs({ args: [...args], options, allowPositionals: true, strict: false, tokens: true });
  for (const token of result.tokens) {
    if (token.kind !== "option") continue;
    const option = options[token.name];
    if (option === undefined) throw new UsageError(unknownOption(token.rawName, Object.keys(options)));
    if (option.type === "boolean" && token.value !== undefined) {
      throw new UsageError(`${token.rawName} takes no value, got ${JSON.stringify(token.value)}`);
    }
    // `--port --tls`: the next option is not a value (a value may still start with one dash: `-5`).
    if (
      option.type === "string" &&
      (token.value === undefined || (!token.inlineValue && token.value.startsWith("--")))
    ) {
      throw new UsageError(`${token.rawName} needs a value`);
    }
  }
  return { values: result.values as Parsed["values"], positionals: result.positionals };
}

/** Option names every command takes, handled before its own parsing. */
const HELP_OPTIONS = ["help"];

function unknownOption(rawName: string, names: readonly string[]): string {
  const bare = rawName.replace(/^--?/, "");
  const guess = /^[A-Za-z][A-Za-z-]*$/.test(bare) ? suggest(bare, [...names, ...HELP_OPTIONS]) : undefined;
  if (guess !== undefined) return `unknown option ${rawName}; did you mean --${guess}?`;
  // `send echo -1`: a JSON body (or any argument) that starts with a dash goes after `--`.
  if (!/^[A-Za-z]/.test(bare)) return `unknown option ${rawName}; an argument that starts with "-" goes after "--"`;
  return `unknown option ${rawName}`;
}

export function stringOption(parsed: Parsed, name: string): string | undefined {
  const value = parsed.values[name];
  return typeof value === "string" ? value : undefined;
}

export function flag(parsed: Parsed, name: string): boolean {
  return parsed.values[name] === true;
}

/** An integer option within bounds, or its default. */
export function intOption(parsed: Parsed, name: string, fallback: number, min: number, max: number): number {
  const raw = stringOption(parsed, name);
  if (raw === undefined) return fallback;
  return parseIntStrict(raw, `--${name}`, min, max);
}

export function parseIntStrict(raw: string, what: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(raw.trim())) throw new UsageError(`${what} must be an integer, got ${JSON.stringify(raw)}`);
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`${what} must be between ${min} and ${max}, got ${raw}`);
  }
  return value;
}

/** A positive number option (decimals allowed), or its default. */
export function numberOption(parsed: Parsed, name: string, fallback: number, min: number, max: number): number {
  const raw = stringOption(parsed, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be a number between ${min} and ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function deviceIdArgument(raw: string | undefined, what: string): string {
  if (raw === undefined) throw new UsageError(`${what} is required`);
  if (!isValidDeviceId(raw)) {
    throw new UsageError(`${what} must be 1 to 128 characters of A-Z a-z 0-9 . _ : - (got ${JSON.stringify(raw)})`);
  }
  return raw;
}

/** Parses a JSON argument; a missing one is null. */
export function jsonArgument(raw: string | undefined, what: string): unknown {
  if (raw === undefined) return null;
  try {
    return JSON.parse(raw);
  } catch {
    throw new UsageError(`${what} must be JSON (for a string, quote it: '"text"'), got ${JSON.stringify(raw)}`);
  }
}

/** Options every command that connects understands. */
export const connectionOptions: Options = {
  host: { type: "string" },
  port: { type: "string" },
  device: { type: "string" },
  token: { type: "string" },
  secret: { type: "string" },
  auth: { type: "string" },
  tls: { type: "boolean" },
  "tls-insecure": { type: "boolean" },
  "tls-ca": { type: "string" },
  timeout: { type: "string" },
};

export interface ConnectionSettings {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean | { readonly rejectUnauthorized: false } | { readonly ca: string };
  readonly timeoutMs: number;
  /** Gives the token for a device: `--token`, or minted from the secret, or none. */
  readonly tokenFor: (deviceId: string) => Promise<string | undefined>;
}

export const AuthKind = { Hmac: "hmac", Jwt: "jwt", None: "none" } as const;
export type AuthKind = (typeof AuthKind)[keyof typeof AuthKind];

/** Reads host, port, TLS and auth from the options, falling back on the environment. */
export function connectionSettings(parsed: Parsed, io: CliIo, timeoutFallbackMs = 10_000): ConnectionSettings {
  const host = stringOption(parsed, "host") ?? io.env.TETHER_HOST ?? "127.0.0.1";
  const portRaw = stringOption(parsed, "port") ?? io.env.TETHER_DEVICE_PORT ?? "3000";
  const port = parseIntStrict(portRaw, "--port", 1, 65535);
  const timeoutMs = intOption(parsed, "timeout", timeoutFallbackMs, 1, 3_600_000);
  const insecure = flag(parsed, "tls-insecure");
  const caFile = stringOption(parsed, "tls-ca");
  let tls: ConnectionSettings["tls"] = flag(parsed, "tls");
  if (insecure) {
    tls = { rejectUnauthorized: false };
  } else if (caFile !== undefined) {
    try {
      tls = { ca: readFileSync(caFile, "utf8") };
    } catch (error) {
      throw new UsageError(
        `--tls-ca: cannot read ${caFile}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  const token = stringOption(parsed, "token");
  const secret = stringOption(parsed, "secret") ?? io.env.TETHER_AUTH_SECRET;
  const authRaw = stringOption(parsed, "auth") ?? io.env.TETHER_AUTH_MODE;
  let auth: AuthKind;
  if (authRaw === undefined || authRaw === "") {
    auth = secret !== undefined && secret !== "" ? AuthKind.Hmac : AuthKind.None;
  } else if (authRaw === "hmac" || authRaw === "jwt" || authRaw === "none") {
    auth = authRaw;
  } else {
    throw new UsageError(`--auth must be hmac, jwt or none, got ${JSON.stringify(authRaw)}`);
  }
  if (token === undefined && auth !== AuthKind.None && (secret === undefined || secret === "")) {
    throw new UsageError(`--auth ${auth} needs --secret (or TETHER_AUTH_SECRET), or give --token`);
  }
  const tokenFor = async (deviceId: string): Promise<string | undefined> => {
    if (token !== undefined) return token;
    if (secret === undefined || secret === "") return undefined;
    if (auth === AuthKind.Hmac) return hmacToken(secret, deviceId);
    if (auth === AuthKind.Jwt) return jwtToken(secret, deviceId, 3600);
    return undefined;
  };
  return { host, port, tls, timeoutMs, tokenFor };
}

/**
 * Client options for one device from the connection settings: its token, TLS, and the timeout
 * for both requests and connecting; `overrides` carries what the command chooses itself.
 */
export async function clientOptions(
  settings: ConnectionSettings,
  deviceId: string,
  overrides: Partial<TetherClientOptions> = {},
): Promise<TetherClientOptions> {
  return {
    host: settings.host,
    port: settings.port,
    deviceId,
    token: await settings.tokenFor(deviceId),
    tls: settings.tls,
    requestTimeoutMs: settings.timeoutMs,
    connectTimeoutMs: settings.timeoutMs,
    ...overrides,
  };
}

/** `--device`, checked, or a random `cli-…` id when it is not given. */
export function deviceOption(parsed: Parsed): string {
  const device = stringOption(parsed, "device");
  return device === undefined ? randomDeviceId("cli") : deviceIdArgument(device, "--device");
}

/**
 * An HS256 JWT for a device: `sub` = deviceId, expiring after `ttlSec`, signed with the key the
 * edge derives from the secret (not with the secret itself).
 */
export async function jwtToken(secret: string, deviceId: string, ttlSec: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(deviceId)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSec)
    .sign(jwtHs256Key(secret));
}

/** A device id for a CLI session when none is given. */
export function randomDeviceId(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString("hex")}`;
}
