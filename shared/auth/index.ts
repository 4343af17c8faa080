/**
 * Device authentication for the `hello` frame: modes `none`, `hmac` and `jwt` (see PROTOCOL.md).
 * Tokens are secrets: nothing here logs them or puts them into a reason or an error.
 *
 * Key separation: `hmac` tokens are HMAC-SHA256 under the configured secret itself, as the
 * protocol fixes them. The HS256 key of mode `jwt` is derived from that secret with HKDF
 * ({@link jwtHs256Key}), so no hmac token is ever a valid JWT signature: a deviceId may look like
 * a JWT signing input (`<header>.<payload>`), and its hmac token would otherwise sign it.
 */

import { createHmac, createPublicKey, hkdfSync, type KeyObject, timingSafeEqual } from "node:crypto";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  jwtVerify,
} from "jose";
import type { ConfigReader } from "../config/index.ts";
import { ErrorCode, TetherError } from "../errors/index.ts";

/** The edge's device auth mode (`TETHER_AUTH_MODE`). */
export const AuthMode = { None: "none", Hmac: "hmac", Jwt: "jwt" } as const;
export type AuthMode = (typeof AuthMode)[keyof typeof AuthMode];
/** Every auth mode, for configuration parsing. */
export const AUTH_MODES: readonly AuthMode[] = Object.values(AuthMode);

/** Mode `hmac`: whether the static token form (no expiry) is taken (`TETHER_AUTH_HMAC_STATIC`). */
export const HmacStaticPolicy = { Accept: "accept", Refuse: "refuse" } as const;
export type HmacStaticPolicy = (typeof HmacStaticPolicy)[keyof typeof HmacStaticPolicy];
const HMAC_STATIC_POLICIES: readonly HmacStaticPolicy[] = Object.values(HmacStaticPolicy);

/** Defaults of the auth settings; README.md documents them. */
export const AUTH_DEFAULTS = {
  hmacStatic: HmacStaticPolicy.Accept,
  /** Longest time from now to an expiring hmac token's `exp`: one day. */
  hmacMaxLifetimeSec: 86_400,
  /** Expiring hmac tokens are refused right after `exp`, as the protocol says. */
  hmacLeewaySec: 0,
  /** Longest JWT lifetime (`exp - iat`, or `exp - now` without `iat`): one day. */
  jwtMaxLifetimeSec: 86_400,
  jwtClockToleranceSec: 5,
} as const;

/** Upper bound of every lifetime setting: ten years. */
const MAX_LIFETIME_BOUND_SEC = 10 * 365 * 24 * 3600;
/** Upper bound of the clock leeway settings. */
const MAX_LEEWAY_SEC = 300;

/** The outcome of a check. `reason` is safe to send to the device and to log. */
export type AuthResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly reason: string;
      /** True when the check could not be made (key set unreachable), not that the token is bad. */
      readonly retryable?: boolean;
    };

export interface Authenticator {
  readonly mode: AuthMode;
  /** Checks a device's token. Never throws and never rejects: a malformed token is `ok: false`. */
  verify(deviceId: string, token: string | undefined): Promise<AuthResult>;
}

export interface AuthenticatorOptions {
  readonly mode: AuthMode;
  /** `hmac`: the shared secret. `jwt`: the HS256 secret (optional when a key set or key is given). */
  readonly secret?: string | undefined;
  /** `jwt`: URL of a JWKS document with RS256/ES256 keys, fetched and cached. */
  readonly jwksUrl?: string | undefined;
  /** `jwt`: a JWKS document given inline. */
  readonly jwks?: JSONWebKeySet | undefined;
  /** `jwt`: one RS256/ES256 public key as PEM (SPKI). */
  readonly publicKeyPem?: string | undefined;
  /** `jwt`: when set, the token's `iss` must equal it. */
  readonly issuer?: string | undefined;
  /** `jwt`: when set, the token's `aud` must contain it. */
  readonly audience?: string | undefined;
  /** `jwt`: leeway for `exp` and `nbf`, in seconds (default 5). */
  readonly clockToleranceSec?: number | undefined;
  /**
   * `jwt`: the longest lifetime a token may claim, in seconds: `exp - iat`, or `exp - now`
   * without `iat` (default one day).
   */
  readonly jwtMaxLifetimeSec?: number | undefined;
  /** `jwt`: lets `jwksUrl` be plain http when its host is loopback (development and tests only). */
  readonly allowLoopbackHttpJwks?: boolean | undefined;
  /** `hmac`: whether the static form (no expiry) is accepted (default accept, for v1 devices). */
  readonly hmacStatic?: HmacStaticPolicy | undefined;
  /** `hmac`: the furthest an expiring token's `exp` may lie in the future, in seconds (default one day). */
  readonly hmacMaxLifetimeSec?: number | undefined;
  /** `hmac`: seconds an expiring token is still taken after its `exp` (default 0). */
  readonly hmacLeewaySec?: number | undefined;
  /** Clock, for tests (milliseconds since the epoch). */
  readonly now?: (() => number) | undefined;
}

const OK: AuthResult = { ok: true };
const ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"] as const;

/**
 * The static `hmac` mode token of a device: base64url(HMAC-SHA256(secret, deviceId)) without padding.
 */
export function hmacToken(secret: string, deviceId: string): string {
  return hmacSignature(secret, deviceId);
}

/**
 * The expiring `hmac` mode token of a device, `<exp>.<sig>`: `exp` in whole Unix seconds and
 * `sig` = base64url(HMAC-SHA256(secret, deviceId + "." + exp)) without padding.
 */
export function expiringHmacToken(secret: string, deviceId: string, expSec: number): string {
  if (!Number.isSafeInteger(expSec) || expSec < 0) {
    throw new TetherError(ErrorCode.InvalidArgument, "exp must be a whole number of seconds, 0 or more");
  }
  const exp = String(expSec);
  return `${exp}.${hmacSignature(secret, `${deviceId}.${exp}`)}`;
}

function hmacSignature(secret: string, message: string): string {
  return createHmac("sha256", secret).update(message, "utf8").digest("base64url");
}

/** HKDF `info` of the HS256 key; changing it invalidates every HS256 token in the field. */
export const JWT_HS256_KEY_INFO = "tether jwt hs256 v1";

/**
 * The key HS256 JWTs are signed and checked with in mode `jwt`: HKDF-SHA256 (RFC 5869) with the
 * UTF-8 bytes of the secret as input key material, an empty salt, info {@link JWT_HS256_KEY_INFO}
 * and 32 bytes of output. Backends that mint HS256 tokens sign with these 32 bytes, never with
 * the secret itself.
 */
export function jwtHs256Key(secret: string): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", Buffer.from(secret, "utf8"), new Uint8Array(0), JWT_HS256_KEY_INFO, 32));
}

/**
 * Why a JWKS URL is not acceptable, or undefined when it is: it must be https, or plain http to a
 * loopback host when `allowLoopbackHttp` is set (development). The key set decides who may
 * connect, so it is never fetched over a channel others can rewrite.
 */
export function jwksUrlProblem(raw: string, allowLoopbackHttp: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "must be an https URL";
  }
  if (url.protocol === "https:") return undefined;
  if (url.protocol === "http:" && isLoopbackHost(url.hostname)) {
    return allowLoopbackHttp ? undefined : "must be an https URL (http only to a loopback host, in development)";
  }
  return "must be an https URL";
}

function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * Builds the checker for the configured mode. Throws a TetherError `invalid_config` when the
 * options are incomplete (say `hmac` without a secret); never at verify time.
 */
export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  switch (options.mode) {
    case AuthMode.None:
      return { mode: AuthMode.None, verify: () => Promise.resolve(OK) };
    case AuthMode.Hmac:
      return createHmacAuthenticator(options);
    case AuthMode.Jwt:
      return createJwtAuthenticator(options);
    default:
      throw new TetherError(ErrorCode.InvalidConfig, `unknown auth mode ${JSON.stringify(String(options.mode))}`);
  }
}

function createHmacAuthenticator(options: AuthenticatorOptions): Authenticator {
  const secret = options.secret;
  if (secret === undefined || secret.length === 0) {
    throw new TetherError(ErrorCode.InvalidConfig, "auth mode hmac needs a secret");
  }
  const staticPolicy = options.hmacStatic ?? AUTH_DEFAULTS.hmacStatic;
  if (!HMAC_STATIC_POLICIES.includes(staticPolicy)) {
    throw new TetherError(ErrorCode.InvalidConfig, "auth mode hmac: the static token policy must be accept or refuse");
  }
  const maxLifetimeMs =
    seconds(
      options.hmacMaxLifetimeSec,
      AUTH_DEFAULTS.hmacMaxLifetimeSec,
      1,
      MAX_LIFETIME_BOUND_SEC,
      "maximum lifetime",
    ) * 1000;
  const leewayMs = seconds(options.hmacLeewaySec, AUTH_DEFAULTS.hmacLeewaySec, 0, MAX_LEEWAY_SEC, "leeway") * 1000;
  const now = options.now ?? Date.now;

  return {
    mode: AuthMode.Hmac,
    verify(deviceId, token) {
      if (token === undefined || token.length === 0) return Promise.resolve(missingToken());
      try {
        // base64url has no ".", so a dot tells the expiring form from the static one.
        const dot = token.indexOf(".");
        if (dot === -1) {
          if (staticPolicy === HmacStaticPolicy.Refuse) return Promise.resolve(invalid("token must carry an expiry"));
          return Promise.resolve(
            signatureMatches(token, hmacSignature(secret, deviceId)) ? OK : invalid("invalid token"),
          );
        }
        const exp = token.slice(0, dot);
        // One spelling per time (no sign, no leading zeros), so a token has exactly one meaning.
        if (!/^(0|[1-9][0-9]{0,14})$/.test(exp)) return Promise.resolve(invalid("invalid token"));
        if (!signatureMatches(token.slice(dot + 1), hmacSignature(secret, `${deviceId}.${exp}`))) {
          return Promise.resolve(invalid("invalid token"));
        }
        const expMs = Number(exp) * 1000;
        const nowMs = now();
        if (nowMs > expMs + leewayMs) return Promise.resolve(invalid("token expired"));
        if (expMs - nowMs > maxLifetimeMs) return Promise.resolve(invalid("token lifetime exceeds the maximum"));
        return Promise.resolve(OK);
      } catch {
        return Promise.resolve(invalid("invalid token"));
      }
    },
  };
}

/** Compares a given signature with the expected one in constant time (for equal lengths). */
function signatureMatches(given: string, expected: string): boolean {
  const expectedBytes = Buffer.from(expected, "utf8");
  // Padding is not part of the format, but a padded signature is the same signature.
  const givenBytes = Buffer.from(given.replace(/=+$/, ""), "utf8");
  // The length of a valid signature is public (43 characters); only equal lengths are compared.
  return givenBytes.length === expectedBytes.length && timingSafeEqual(givenBytes, expectedBytes);
}

/** A whole number of seconds from the options, or its default; out of bounds is a config error. */
function seconds(value: number | undefined, fallback: number, min: number, max: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new TetherError(ErrorCode.InvalidConfig, `auth: the ${what} must be between ${min} and ${max} seconds`);
  }
  return value;
}

function missingToken(): AuthResult {
  return { ok: false, reason: "token required" };
}

function invalid(reason: string): AuthResult {
  return { ok: false, reason };
}

type VerifyKey = Uint8Array | KeyObject | JWTVerifyGetKey;

function createJwtAuthenticator(options: AuthenticatorOptions): Authenticator {
  const secretKey = options.secret !== undefined && options.secret.length > 0 ? jwtHs256Key(options.secret) : undefined;
  if (options.jwksUrl !== undefined && options.jwksUrl.length > 0) {
    const problem = jwksUrlProblem(options.jwksUrl, options.allowLoopbackHttpJwks === true);
    if (problem !== undefined) throw new TetherError(ErrorCode.InvalidConfig, `auth mode jwt: the JWKS URL ${problem}`);
  }
  const maxLifetimeSec = seconds(
    options.jwtMaxLifetimeSec,
    AUTH_DEFAULTS.jwtMaxLifetimeSec,
    1,
    MAX_LIFETIME_BOUND_SEC,
    "maximum lifetime",
  );
  let asymmetric: VerifyKey | undefined;
  try {
    if (options.jwksUrl !== undefined && options.jwksUrl.length > 0) {
      asymmetric = createRemoteJWKSet(new URL(options.jwksUrl));
    } else if (options.jwks !== undefined) {
      asymmetric = createLocalJWKSet(options.jwks);
    } else if (options.publicKeyPem !== undefined && options.publicKeyPem.length > 0) {
      asymmetric = createPublicKey(options.publicKeyPem);
    }
  } catch (error) {
    throw new TetherError(ErrorCode.InvalidConfig, "auth mode jwt: the key set URL or public key is not usable", {
      cause: error,
    });
  }
  if (secretKey === undefined && asymmetric === undefined) {
    throw new TetherError(ErrorCode.InvalidConfig, "auth mode jwt needs a secret, a JWKS URL, a JWKS or a public key");
  }
  const algorithms: string[] = [];
  if (secretKey !== undefined) algorithms.push("HS256");
  if (asymmetric !== undefined) algorithms.push(...ASYMMETRIC_ALGORITHMS);

  const baseOptions: JWTVerifyOptions = {
    algorithms,
    requiredClaims: ["exp", "sub"],
    clockTolerance: options.clockToleranceSec ?? AUTH_DEFAULTS.jwtClockToleranceSec,
    ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
    ...(options.audience === undefined ? {} : { audience: options.audience }),
  };
  const now = options.now;

  // One key function picks the key by the token's algorithm, so both kinds can be configured at once.
  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (header.alg === "HS256") {
      if (secretKey === undefined) throw new Error("HS256 not configured");
      return secretKey;
    }
    if (asymmetric === undefined) throw new Error("asymmetric keys not configured");
    if (typeof asymmetric === "function") return asymmetric(header, token);
    return asymmetric;
  };

  return {
    mode: AuthMode.Jwt,
    async verify(deviceId, token) {
      if (token === undefined || token.length === 0) return missingToken();
      try {
        const nowMs = now === undefined ? Date.now() : now();
        const verifyOptions: JWTVerifyOptions =
          now === undefined ? baseOptions : { ...baseOptions, currentDate: new Date(nowMs) };
        const { payload } = await jwtVerify(token, getKey, verifyOptions);
        if (payload.sub !== deviceId) return invalid("token subject does not match deviceId");
        // jwtVerify has checked that exp (required) and iat (when present) are numbers. An iat in
        // the future does not shorten the lifetime: the token is usable from now on.
        const nowSec = nowMs / 1000;
        const start = typeof payload.iat === "number" ? Math.min(payload.iat, nowSec) : nowSec;
        if (typeof payload.exp !== "number" || payload.exp - start > maxLifetimeSec) {
          return invalid("token lifetime exceeds the maximum");
        }
        return OK;
      } catch (error) {
        return jwtFailure(error);
      }
    },
  };
}

function jwtFailure(error: unknown): AuthResult {
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  switch (code) {
    case "ERR_JWT_EXPIRED":
      return invalid("token expired");
    case "ERR_JWT_CLAIM_VALIDATION_FAILED": {
      const claim = (error as { claim?: unknown }).claim;
      return invalid(typeof claim === "string" ? `token claim ${claim} is missing or invalid` : "invalid token claims");
    }
    case "ERR_JOSE_ALG_NOT_ALLOWED":
      return invalid("token algorithm not allowed");
    case "ERR_JWKS_TIMEOUT":
    case "ERR_JWKS_INVALID":
      return { ok: false, reason: "key set unavailable", retryable: true };
    case "ERR_JWKS_NO_MATCHING_KEY":
      return invalid("no matching key for token");
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return invalid("invalid token signature");
    default:
      // Not a verdict on the token (the key set could not be fetched, say): a retry may pass.
      if (isFetchFailure(error)) return { ok: false, reason: "key set unavailable", retryable: true };
      return invalid("invalid token");
  }
}

function isFetchFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (/JSON Web Key Set/.test(error.message)) return true;
  return error.name === "TypeError" || error.name === "AbortError" || /fetch|ECONN|ENOTFOUND/i.test(error.message);
}

/** An edge's auth settings as read from the environment; usable as {@link AuthenticatorOptions} as is. */
export interface AuthConfig {
  readonly mode: AuthMode;
  /** `TETHER_AUTH_SECRET`: the hmac secret, and the input of the HS256 key in mode `jwt`. */
  readonly secret: string | undefined;
  readonly jwksUrl: string | undefined;
  /** True in development only: a JWKS URL may then be http to a loopback host. */
  readonly allowLoopbackHttpJwks: boolean;
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
  readonly jwtMaxLifetimeSec: number;
  readonly hmacStatic: HmacStaticPolicy;
  readonly hmacMaxLifetimeSec: number;
  readonly hmacLeewaySec: number;
}

/** Auth settings with every default, for tests and embedded use. */
export function defaultAuthConfig(mode: AuthMode = AuthMode.None, secret?: string): AuthConfig {
  return {
    mode,
    secret,
    jwksUrl: undefined,
    allowLoopbackHttpJwks: false,
    issuer: undefined,
    audience: undefined,
    jwtMaxLifetimeSec: AUTH_DEFAULTS.jwtMaxLifetimeSec,
    hmacStatic: AUTH_DEFAULTS.hmacStatic,
    hmacMaxLifetimeSec: AUTH_DEFAULTS.hmacMaxLifetimeSec,
    hmacLeewaySec: AUTH_DEFAULTS.hmacLeewaySec,
  };
}

/**
 * Reads the `TETHER_AUTH_*` and `TETHER_JWT_*` variables, recording every problem on `reader`.
 * Mode `none` is refused unless `environment` is `development`.
 */
export function readAuthConfig(reader: ConfigReader, environment: "production" | "development"): AuthConfig {
  const development = environment === "development";
  const mode = reader.oneOf("TETHER_AUTH_MODE", AUTH_MODES, development ? AuthMode.None : AuthMode.Hmac);
  const secret = reader.optionalString("TETHER_AUTH_SECRET");
  const jwksUrl = reader.optionalString("TETHER_AUTH_JWKS_URL");
  if (mode === AuthMode.None && !development) {
    reader.problem(
      "TETHER_AUTH_MODE",
      "is none, which lets any device in; it is only allowed with TETHER_ENV=development (set TETHER_AUTH_MODE=hmac or jwt for production)",
    );
  }
  if (mode === AuthMode.Hmac && secret === undefined) {
    reader.problem("TETHER_AUTH_SECRET", "is required when TETHER_AUTH_MODE=hmac");
  }
  if (mode === AuthMode.Jwt && secret === undefined && jwksUrl === undefined) {
    reader.problem("TETHER_AUTH_SECRET", "or TETHER_AUTH_JWKS_URL is required when TETHER_AUTH_MODE=jwt");
  }
  if (jwksUrl !== undefined) {
    const problem = jwksUrlProblem(jwksUrl, development);
    if (problem !== undefined) reader.problem("TETHER_AUTH_JWKS_URL", `${problem}, got ${JSON.stringify(jwksUrl)}`);
  }
  return {
    mode,
    secret,
    jwksUrl,
    allowLoopbackHttpJwks: development,
    issuer: reader.optionalString("TETHER_JWT_ISSUER"),
    audience: reader.optionalString("TETHER_JWT_AUDIENCE"),
    jwtMaxLifetimeSec: reader.integer("TETHER_JWT_MAX_LIFETIME_S", AUTH_DEFAULTS.jwtMaxLifetimeSec, {
      min: 1,
      max: MAX_LIFETIME_BOUND_SEC,
    }),
    hmacStatic: reader.oneOf("TETHER_AUTH_HMAC_STATIC", HMAC_STATIC_POLICIES, AUTH_DEFAULTS.hmacStatic),
    hmacMaxLifetimeSec: reader.integer("TETHER_AUTH_HMAC_MAX_LIFETIME_S", AUTH_DEFAULTS.hmacMaxLifetimeSec, {
      min: 1,
      max: MAX_LIFETIME_BOUND_SEC,
    }),
    hmacLeewaySec: reader.integer("TETHER_AUTH_HMAC_LEEWAY_S", AUTH_DEFAULTS.hmacLeewaySec, {
      min: 0,
      max: MAX_LEEWAY_SEC,
    }),
  };
}
