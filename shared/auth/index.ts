/**
 * Device authentication for the `hello` frame: modes `none`, `hmac` and `jwt` (see PROTOCOL.md).
 * Tokens are secrets: nothing here logs them or puts them into a reason or an error.
 */

import { createHmac, createPublicKey, type KeyObject, timingSafeEqual } from "node:crypto";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  jwtVerify,
} from "jose";
import { ErrorCode, TetherError } from "../errors/index.ts";

export const AuthMode = { None: "none", Hmac: "hmac", Jwt: "jwt" } as const;
export type AuthMode = (typeof AuthMode)[keyof typeof AuthMode];

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
  /** Clock, for tests (milliseconds since the epoch). */
  readonly now?: (() => number) | undefined;
}

const OK: AuthResult = { ok: true };
const ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"] as const;

/**
 * The `hmac` mode token of a device: base64url(HMAC-SHA256(secret, deviceId)) without padding.
 */
export function hmacToken(secret: string, deviceId: string): string {
  return createHmac("sha256", secret).update(deviceId, "utf8").digest("base64url");
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
  return {
    mode: AuthMode.Hmac,
    verify(deviceId, token) {
      if (token === undefined || token.length === 0) return Promise.resolve(missingToken());
      try {
        const expected = Buffer.from(hmacToken(secret, deviceId), "utf8");
        // Padding is not part of the format, but a padded token is the same token.
        const given = Buffer.from(token.replace(/=+$/, ""), "utf8");
        // The length of a valid token is public (43 characters); only equal lengths are compared.
        if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
          return Promise.resolve(invalid("invalid token"));
        }
        return Promise.resolve(OK);
      } catch {
        return Promise.resolve(invalid("invalid token"));
      }
    },
  };
}

function missingToken(): AuthResult {
  return { ok: false, reason: "token required" };
}

function invalid(reason: string): AuthResult {
  return { ok: false, reason };
}

type VerifyKey = Uint8Array | KeyObject | JWTVerifyGetKey;

function createJwtAuthenticator(options: AuthenticatorOptions): Authenticator {
  const secretKey =
    options.secret !== undefined && options.secret.length > 0 ? new TextEncoder().encode(options.secret) : undefined;
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
    clockTolerance: options.clockToleranceSec ?? 5,
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
        const verifyOptions: JWTVerifyOptions =
          now === undefined ? baseOptions : { ...baseOptions, currentDate: new Date(now()) };
        const { payload } = await jwtVerify(token, getKey, verifyOptions);
        if (payload.sub !== deviceId) return invalid("token subject does not match deviceId");
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
