import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createAuthenticator, expiringHmacToken, hmacToken, readAuthConfig } from "../../../shared/auth/index.ts";
import { ConfigReader, type Env } from "../../../shared/config/index.ts";
import { hasErrorCode } from "../../../shared/errors/index.ts";

function read(env: Env, environment: "production" | "development" = "production") {
  const reader = new ConfigReader(env);
  const auth = readAuthConfig(reader, environment);
  return reader.finish({ auth }).auth;
}

function problemsOf(env: Env, environment: "production" | "development" = "production"): string {
  try {
    read(env, environment);
  } catch (error) {
    assert.ok(hasErrorCode(error, "invalid_config"), String(error));
    return error.message;
  }
  assert.fail("the configuration was accepted");
}

describe("auth configuration", () => {
  it("uses the documented defaults", () => {
    const auth = read({ TETHER_AUTH_SECRET: "s" });
    assert.deepEqual(
      {
        mode: auth.mode,
        hmacStatic: auth.hmacStatic,
        hmacMaxLifetimeSec: auth.hmacMaxLifetimeSec,
        hmacLeewaySec: auth.hmacLeewaySec,
        jwtMaxLifetimeSec: auth.jwtMaxLifetimeSec,
        issuer: auth.issuer,
        audience: auth.audience,
      },
      {
        mode: "hmac",
        hmacStatic: "accept",
        hmacMaxLifetimeSec: 86_400,
        hmacLeewaySec: 0,
        jwtMaxLifetimeSec: 86_400,
        issuer: undefined,
        audience: undefined,
      },
    );
    assert.equal(read({}, "development").mode, "none");
  });

  it("reads every auth variable", () => {
    const auth = read({
      TETHER_AUTH_MODE: "jwt",
      TETHER_AUTH_SECRET: "s",
      TETHER_AUTH_JWKS_URL: "https://id.example.com/.well-known/jwks.json",
      TETHER_JWT_ISSUER: "https://id.example.com/",
      TETHER_JWT_AUDIENCE: "tether-devices",
      TETHER_JWT_MAX_LIFETIME_S: "600",
      TETHER_AUTH_HMAC_STATIC: "refuse",
      TETHER_AUTH_HMAC_MAX_LIFETIME_S: "3600",
      TETHER_AUTH_HMAC_LEEWAY_S: "2",
    });
    assert.equal(auth.jwksUrl, "https://id.example.com/.well-known/jwks.json");
    assert.equal(auth.issuer, "https://id.example.com/");
    assert.equal(auth.audience, "tether-devices");
    assert.equal(auth.jwtMaxLifetimeSec, 600);
    assert.equal(auth.hmacStatic, "refuse");
    assert.equal(auth.hmacMaxLifetimeSec, 3600);
    assert.equal(auth.hmacLeewaySec, 2);
    assert.equal(auth.allowLoopbackHttpJwks, false);
  });

  it("names every bad variable at once", () => {
    const message = problemsOf({
      TETHER_AUTH_MODE: "hmac",
      TETHER_AUTH_HMAC_STATIC: "sometimes",
      TETHER_AUTH_HMAC_MAX_LIFETIME_S: "0",
      TETHER_AUTH_HMAC_LEEWAY_S: "-1",
      TETHER_JWT_MAX_LIFETIME_S: "a day",
      TETHER_AUTH_JWKS_URL: "http://id.example.com/jwks.json",
    });
    for (const name of [
      "TETHER_AUTH_SECRET",
      "TETHER_AUTH_HMAC_STATIC",
      "TETHER_AUTH_HMAC_MAX_LIFETIME_S",
      "TETHER_AUTH_HMAC_LEEWAY_S",
      "TETHER_JWT_MAX_LIFETIME_S",
      "TETHER_AUTH_JWKS_URL",
    ]) {
      assert.match(message, new RegExp(`${name} `), name);
    }
    assert.match(problemsOf({ TETHER_AUTH_MODE: "kerberos", TETHER_AUTH_SECRET: "s" }), /TETHER_AUTH_MODE/);
  });

  it("refuses a JWKS URL that is not https at start-up, allowing loopback http in development only", () => {
    const jwt = { TETHER_AUTH_MODE: "jwt" };
    for (const url of ["http://id.example.com/jwks.json", "http://127.0.0.1:8080/jwks.json", "file:///etc/jwks.json"]) {
      assert.match(problemsOf({ ...jwt, TETHER_AUTH_JWKS_URL: url }), /TETHER_AUTH_JWKS_URL must be an https URL/, url);
    }
    assert.match(
      problemsOf({ ...jwt, TETHER_AUTH_JWKS_URL: "http://id.example.com/jwks.json" }, "development"),
      /TETHER_AUTH_JWKS_URL/,
    );
    const local = read({ ...jwt, TETHER_AUTH_JWKS_URL: "http://127.0.0.1:8080/jwks.json" }, "development");
    assert.equal(local.allowLoopbackHttpJwks, true);
    assert.doesNotThrow(() => createAuthenticator(local));
    assert.equal(
      read({ ...jwt, TETHER_AUTH_JWKS_URL: "https://id.example.com/jwks" }).jwksUrl,
      "https://id.example.com/jwks",
    );
  });

  it("builds an authenticator that applies the settings read", async () => {
    const auth = createAuthenticator(read({ TETHER_AUTH_SECRET: "s", TETHER_AUTH_HMAC_STATIC: "refuse" }));
    assert.equal((await auth.verify("dev-1", hmacToken("s", "dev-1"))).ok, false);
    const exp = Math.floor(Date.now() / 1000) + 60;
    assert.deepEqual(await auth.verify("dev-1", expiringHmacToken("s", "dev-1", exp)), { ok: true });
  });
});
