import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { exportJWK, exportSPKI, generateKeyPair, jwtVerify, SignJWT } from "jose";
import {
  type AuthenticatorOptions,
  createAuthenticator,
  expiringHmacToken,
  hmacToken,
  jwksUrlProblem,
  jwtHs256Key,
} from "../../../shared/auth/index.ts";
import { isTetherError } from "../../../shared/errors/index.ts";
import { isValidDeviceId } from "../../../shared/protocol/index.ts";

const SECRET = "s3cret-for-tests";
const nowSec = (): number => Math.floor(Date.now() / 1000);

async function hs256(claims: Record<string, unknown>, secret = SECRET): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(jwtHs256Key(secret));
}

const b64url = (text: string): string => Buffer.from(text, "utf8").toString("base64url");
const isInvalidConfig = (e: unknown): boolean => isTetherError(e) && e.code === "invalid_config";

describe("hmacToken", () => {
  it("is base64url HMAC-SHA256 of the deviceId without padding", () => {
    const expected = createHmac("sha256", "k").update("dev-1").digest("base64").replace(/=+$/, "");
    const token = hmacToken("k", "dev-1");
    assert.equal(token, expected.replace(/\+/g, "-").replace(/\//g, "_"));
    assert.equal(token.length, 43);
    assert.doesNotMatch(token, /[=+/]/);
  });
});

describe("createAuthenticator", () => {
  it("accepts anything in mode none", async () => {
    const auth = createAuthenticator({ mode: "none" });
    assert.deepEqual(await auth.verify("d", undefined), { ok: true });
  });

  it("accepts the right hmac token and refuses a wrong, missing or foreign one", async () => {
    const auth = createAuthenticator({ mode: "hmac", secret: SECRET });
    assert.deepEqual(await auth.verify("dev-1", hmacToken(SECRET, "dev-1")), { ok: true });
    assert.deepEqual(await auth.verify("dev-1", `${hmacToken(SECRET, "dev-1")}=`), { ok: true });
    for (const token of [hmacToken(SECRET, "dev-2"), hmacToken("other", "dev-1"), "x", "", "é".repeat(43)]) {
      const result = await auth.verify("dev-1", token);
      assert.equal(result.ok, false);
    }
    const missing = await auth.verify("dev-1", undefined);
    assert.ok(!missing.ok && missing.reason === "token required");
  });

  it("refuses to build hmac or jwt modes without key material", () => {
    for (const options of [
      { mode: "hmac" as const },
      { mode: "hmac" as const, secret: "" },
      { mode: "jwt" as const },
    ]) {
      assert.throws(
        () => createAuthenticator(options),
        (e: unknown) => isTetherError(e) && e.code === "invalid_config",
      );
    }
    assert.throws(
      () => createAuthenticator({ mode: "bogus" as "none" }),
      (e: unknown) => isTetherError(e),
    );
  });

  it("accepts an HS256 JWT whose sub is the deviceId and which has not expired", async () => {
    const auth = createAuthenticator({ mode: "jwt", secret: SECRET });
    const token = await hs256({ sub: "dev-1", exp: nowSec() + 60 });
    assert.deepEqual(await auth.verify("dev-1", token), { ok: true });
  });

  it("refuses expired, sub-less, exp-less, wrong-sub and wrongly signed JWTs", async () => {
    const auth = createAuthenticator({ mode: "jwt", secret: SECRET, clockToleranceSec: 0 });
    const cases: Array<[string, RegExp]> = [
      [await hs256({ sub: "dev-1", exp: nowSec() - 10 }), /expired/],
      [await hs256({ sub: "dev-2", exp: nowSec() + 60 }), /subject/],
      [await hs256({ exp: nowSec() + 60 }), /sub/],
      [await hs256({ sub: "dev-1" }), /exp/],
      [await hs256({ sub: "dev-1", exp: nowSec() + 60 }, "another-secret"), /signature/],
      ["not.a.jwt", /token/],
      ["garbage", /token/],
    ];
    for (const [token, reason] of cases) {
      const result = await auth.verify("dev-1", token);
      assert.equal(result.ok, false);
      if (!result.ok) {
        assert.match(result.reason, reason);
        assert.ok(!result.reason.includes(token), "the reason never contains the token");
      }
    }
  });

  it("uses the injected clock and the clock tolerance for exp", async () => {
    const exp = nowSec() + 100;
    const token = await hs256({ sub: "d", exp });
    const later = createAuthenticator({
      mode: "jwt",
      secret: SECRET,
      clockToleranceSec: 5,
      now: () => (exp + 3) * 1000,
    });
    assert.deepEqual(await later.verify("d", token), { ok: true });
    const muchLater = createAuthenticator({
      mode: "jwt",
      secret: SECRET,
      clockToleranceSec: 5,
      now: () => (exp + 30) * 1000,
    });
    assert.equal((await muchLater.verify("d", token)).ok, false);
  });

  it("checks issuer and audience when configured", async () => {
    const auth = createAuthenticator({ mode: "jwt", secret: SECRET, issuer: "iss-a", audience: "tether" });
    const good = await hs256({ sub: "d", exp: nowSec() + 60, iss: "iss-a", aud: "tether" });
    const wrong = await hs256({ sub: "d", exp: nowSec() + 60, iss: "iss-b", aud: "tether" });
    assert.deepEqual(await auth.verify("d", good), { ok: true });
    assert.equal((await auth.verify("d", wrong)).ok, false);
  });

  it("refuses an HS256 token when only asymmetric keys are configured (no algorithm confusion)", async () => {
    const { publicKey } = await generateKeyPair("ES256");
    const auth = createAuthenticator({ mode: "jwt", publicKeyPem: await exportSPKI(publicKey) });
    const result = await auth.verify("d", await hs256({ sub: "d", exp: nowSec() + 60 }));
    assert.equal(result.ok, false);
  });

  it("verifies ES256 with a PEM key and RS256 with a local JWKS", async () => {
    const es = await generateKeyPair("ES256");
    const esAuth = createAuthenticator({ mode: "jwt", publicKeyPem: await exportSPKI(es.publicKey) });
    const esToken = await new SignJWT({ sub: "d", exp: nowSec() + 60 })
      .setProtectedHeader({ alg: "ES256" })
      .sign(es.privateKey);
    assert.deepEqual(await esAuth.verify("d", esToken), { ok: true });
    assert.equal((await esAuth.verify("e", esToken)).ok, false);

    const rs = await generateKeyPair("RS256");
    const jwk = { ...(await exportJWK(rs.publicKey)), kid: "k1", alg: "RS256" };
    const rsAuth = createAuthenticator({ mode: "jwt", jwks: { keys: [jwk] } });
    const rsToken = await new SignJWT({ sub: "d", exp: nowSec() + 60 })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .sign(rs.privateKey);
    assert.deepEqual(await rsAuth.verify("d", rsToken), { ok: true });
  });

  it("verifies RS256 against a JWKS URL and reports an unreachable key set as retryable", async (t) => {
    const rs = await generateKeyPair("RS256");
    const jwk = { ...(await exportJWK(rs.publicKey)), kid: "k1", alg: "RS256" };
    let status = 200;
    const server = createServer((_req, res) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    t.after(() => server.close());
    const port = (server.address() as AddressInfo).port;
    const auth = createAuthenticator({
      mode: "jwt",
      jwksUrl: `http://127.0.0.1:${port}/jwks.json`,
      allowLoopbackHttpJwks: true,
    });
    const token = await new SignJWT({ sub: "d", exp: nowSec() + 60 })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .sign(rs.privateKey);
    assert.deepEqual(await auth.verify("d", token), { ok: true });

    status = 503;
    const down = createAuthenticator({
      mode: "jwt",
      jwksUrl: `http://127.0.0.1:${port}/jwks.json`,
      allowLoopbackHttpJwks: true,
    });
    const result = await down.verify("d", token);
    assert.ok(!result.ok && result.retryable === true, JSON.stringify(result));
  });
});

describe("expiring hmac tokens", () => {
  const EXP = 1_900_000_000;
  const at =
    (sec: number, extraMs = 0) =>
    () =>
      sec * 1000 + extraMs;
  const hmacAuth = (options: Partial<AuthenticatorOptions> = {}) =>
    createAuthenticator({ mode: "hmac", secret: SECRET, now: at(EXP - 60), ...options });

  it("are <exp>.<sig> with sig the base64url HMAC-SHA256 of deviceId + '.' + exp without padding", () => {
    const sig = createHmac("sha256", SECRET).update(`dev.1.${EXP}`).digest("base64url");
    assert.equal(expiringHmacToken(SECRET, "dev.1", EXP), `${EXP}.${sig}`);
    assert.doesNotMatch(sig, /[=+/]/);
    assert.throws(() => expiringHmacToken(SECRET, "d", 1.5));
    assert.throws(() => expiringHmacToken(SECRET, "d", -1));
  });

  it("are accepted up to exp and refused after it", async () => {
    const token = expiringHmacToken(SECRET, "dev-1", EXP);
    assert.deepEqual(await hmacAuth().verify("dev-1", token), { ok: true });
    assert.deepEqual(await hmacAuth({ now: at(EXP) }).verify("dev-1", token), { ok: true });
    const expired = await hmacAuth({ now: at(EXP, 1) }).verify("dev-1", token);
    assert.ok(!expired.ok && expired.reason === "token expired", JSON.stringify(expired));
    const longExpired = await hmacAuth({ now: at(EXP + 3600) }).verify("dev-1", token);
    assert.equal(longExpired.ok, false);
  });

  it("are taken for the configured leeway after exp and no longer", async () => {
    const token = expiringHmacToken(SECRET, "dev-1", EXP);
    assert.deepEqual(await hmacAuth({ hmacLeewaySec: 5, now: at(EXP + 5) }).verify("dev-1", token), { ok: true });
    assert.equal((await hmacAuth({ hmacLeewaySec: 5, now: at(EXP + 5, 1) }).verify("dev-1", token)).ok, false);
  });

  it("are refused when exp lies further ahead than the maximum lifetime", async () => {
    const now = at(EXP - 3600);
    const auth = hmacAuth({ hmacMaxLifetimeSec: 3600, now });
    assert.deepEqual(await auth.verify("dev-1", expiringHmacToken(SECRET, "dev-1", EXP)), { ok: true });
    const tooLong = await auth.verify("dev-1", expiringHmacToken(SECRET, "dev-1", EXP + 1));
    assert.ok(!tooLong.ok && /lifetime/.test(tooLong.reason), JSON.stringify(tooLong));
    // The default bound is one day.
    const farAhead = expiringHmacToken(SECRET, "dev-1", EXP - 60 + 86_401);
    assert.equal((await hmacAuth().verify("dev-1", farAhead)).ok, false);
  });

  it("are refused when signed for another device, another exp or another secret, or not canonical", async () => {
    const auth = hmacAuth();
    const good = expiringHmacToken(SECRET, "dev-1", EXP);
    const sig = good.slice(good.indexOf(".") + 1);
    for (const token of [
      expiringHmacToken(SECRET, "dev-2", EXP),
      expiringHmacToken("other", "dev-1", EXP),
      `${EXP + 1000}.${sig}`,
      `0${EXP}.${createHmac("sha256", SECRET).update(`dev-1.0${EXP}`).digest("base64url")}`,
      `+${EXP}.${sig}`,
      `${EXP}.`,
      `.${sig}`,
      `${EXP}.${sig}.x`,
      `${EXP}.${hmacToken(SECRET, "dev-1")}`,
      `${EXP}.${"é".repeat(43)}`,
    ]) {
      const result = await auth.verify("dev-1", token);
      assert.equal(result.ok, false, token);
      if (!result.ok) assert.ok(!result.reason.includes(sig), "the reason never contains the token");
    }
  });

  it("keep the static form working by default and refuse it when configured, expiring tokens still taken", async () => {
    const staticToken = hmacToken(SECRET, "dev-1");
    assert.deepEqual(await hmacAuth().verify("dev-1", staticToken), { ok: true });
    assert.deepEqual(await hmacAuth({ hmacStatic: "accept" }).verify("dev-1", staticToken), { ok: true });
    const strict = hmacAuth({ hmacStatic: "refuse" });
    const refused = await strict.verify("dev-1", staticToken);
    assert.ok(!refused.ok && /expiry/.test(refused.reason), JSON.stringify(refused));
    assert.deepEqual(await strict.verify("dev-1", expiringHmacToken(SECRET, "dev-1", EXP)), { ok: true });
  });

  it("refuse to build with an unknown static policy or an out-of-range lifetime or leeway", () => {
    for (const options of [
      { hmacStatic: "sometimes" as "accept" },
      { hmacMaxLifetimeSec: 0 },
      { hmacMaxLifetimeSec: 1.5 },
      { hmacLeewaySec: -1 },
      { hmacLeewaySec: 3600 },
    ]) {
      assert.throws(() => hmacAuth(options), isInvalidConfig, JSON.stringify(options));
    }
  });
});

describe("jwt issuer, audience and lifetime", () => {
  it("refuses a wrong or missing aud and a missing iss when they are configured", async () => {
    const auth = createAuthenticator({ mode: "jwt", secret: SECRET, issuer: "iss-a", audience: "tether" });
    const exp = nowSec() + 60;
    assert.deepEqual(await auth.verify("d", await hs256({ sub: "d", exp, iss: "iss-a", aud: ["x", "tether"] })), {
      ok: true,
    });
    for (const claims of [
      { sub: "d", exp, iss: "iss-a", aud: "other" },
      { sub: "d", exp, iss: "iss-a" },
      { sub: "d", exp, aud: "tether" },
      { sub: "d", exp, iss: "ISS-A", aud: "tether" },
    ]) {
      const result = await auth.verify("d", await hs256(claims));
      assert.ok(!result.ok && /iss|aud/.test(result.reason), JSON.stringify([claims, result]));
    }
  });

  it("refuses a token whose exp - iat, or exp - now without iat, exceeds the maximum lifetime", async () => {
    const now = nowSec();
    const auth = createAuthenticator({ mode: "jwt", secret: SECRET, jwtMaxLifetimeSec: 3600, now: () => now * 1000 });
    assert.deepEqual(await auth.verify("d", await hs256({ sub: "d", iat: now - 100, exp: now + 3500 })), { ok: true });
    assert.deepEqual(await auth.verify("d", await hs256({ sub: "d", exp: now + 3600 })), { ok: true });
    for (const claims of [
      { sub: "d", iat: now - 100, exp: now + 3501 },
      { sub: "d", exp: now + 3601 },
      // An iat in the future does not make a long-lived token short.
      { sub: "d", iat: now + 86_400, exp: now + 86_400 + 60 },
    ]) {
      const result = await auth.verify("d", await hs256(claims));
      assert.ok(!result.ok && /lifetime/.test(result.reason), JSON.stringify([claims, result]));
    }
    // The default bound is one day.
    const lenient = createAuthenticator({ mode: "jwt", secret: SECRET });
    assert.equal((await lenient.verify("d", await hs256({ sub: "d", exp: nowSec() + 86_400 + 60 }))).ok, false);
    assert.throws(() => createAuthenticator({ mode: "jwt", secret: SECRET, jwtMaxLifetimeSec: 0 }), isInvalidConfig);
  });

  it("applies the lifetime bound to asymmetric tokens as well", async () => {
    const es = await generateKeyPair("ES256");
    const auth = createAuthenticator({
      mode: "jwt",
      publicKeyPem: await exportSPKI(es.publicKey),
      jwtMaxLifetimeSec: 60,
    });
    const token = await new SignJWT({ sub: "d", exp: nowSec() + 600 })
      .setProtectedHeader({ alg: "ES256" })
      .sign(es.privateKey);
    assert.equal((await auth.verify("d", token)).ok, false);
  });
});

describe("JWKS URLs", () => {
  it("must be https; http only to a loopback host and only when allowed", () => {
    assert.equal(jwksUrlProblem("https://id.example.com/.well-known/jwks.json", false), undefined);
    for (const url of ["http://id.example.com/jwks.json", "ftp://id.example.com/jwks", "not a url", "//x/jwks"]) {
      assert.match(jwksUrlProblem(url, true) ?? "", /https/, url);
    }
    for (const url of ["http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]:9/jwks"]) {
      assert.match(jwksUrlProblem(url, false) ?? "", /https/, url);
      assert.equal(jwksUrlProblem(url, true), undefined, url);
    }
    assert.match(jwksUrlProblem("http://127.0.0.1.example.com/jwks", true) ?? "", /https/);
  });

  it("over plain http make building the jwt mode fail", () => {
    assert.throws(
      () => createAuthenticator({ mode: "jwt", jwksUrl: "http://id.example.com/jwks.json" }),
      isInvalidConfig,
    );
    assert.throws(() => createAuthenticator({ mode: "jwt", jwksUrl: "http://127.0.0.1:1/jwks.json" }), isInvalidConfig);
    assert.throws(
      () => createAuthenticator({ mode: "jwt", jwksUrl: "http://id.example.com/jwks", allowLoopbackHttpJwks: true }),
      isInvalidConfig,
    );
  });
});

describe("key separation between hmac and jwt", () => {
  it("derives the HS256 key with HKDF-SHA256 (empty salt, info 'tether jwt hs256 v1', 32 bytes)", () => {
    assert.equal(
      Buffer.from(jwtHs256Key(SECRET)).toString("hex"),
      "f377c6596f237f5cf0390f4b2cf190e272dab6c292eeee698a06e4c6c40a96b5",
    );
    // The same bytes by RFC 5869 spelled out: PRK = HMAC(32 zero bytes, secret); OKM = HMAC(PRK, info || 0x01).
    const prk = createHmac("sha256", Buffer.alloc(32)).update(SECRET).digest();
    const okm = createHmac("sha256", prk)
      .update("tether jwt hs256 v1")
      .update(Buffer.from([1]))
      .digest();
    assert.deepEqual(Buffer.from(jwtHs256Key(SECRET)), okm);
    assert.notDeepEqual(Buffer.from(jwtHs256Key(SECRET)), Buffer.from(SECRET));
  });

  it("does not take an hmac token of a JWT-shaped deviceId as a JWT", async () => {
    const exp = nowSec() + 600;
    const deviceId = `${b64url('{"alg":"HS256"}')}.${b64url(`{"sub":"victim","exp":${exp}}`)}`;
    assert.ok(isValidDeviceId(deviceId), "a device may have this id");
    const forged = `${deviceId}.${hmacToken(SECRET, deviceId)}`;
    // Signed with the secret itself, the forgery would be a valid JWT for another device.
    const raw = await jwtVerify(forged, new TextEncoder().encode(SECRET), { algorithms: ["HS256"] });
    assert.equal(raw.payload.sub, "victim");

    const auth = createAuthenticator({ mode: "jwt", secret: SECRET });
    const result = await auth.verify("victim", forged);
    assert.ok(!result.ok && /signature/.test(result.reason), JSON.stringify(result));
  });

  it("does not take the signature of a JWT as the hmac token of its signing input", async () => {
    const jwt = await hs256({ sub: "d", exp: nowSec() + 60 });
    const cut = jwt.lastIndexOf(".");
    const signingInput = jwt.slice(0, cut);
    const signature = jwt.slice(cut + 1);
    assert.ok(isValidDeviceId(signingInput));
    // Under a shared key the signature would be exactly that device's hmac token.
    const sameKey = await new SignJWT({ sub: "d", exp: nowSec() + 60 })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode(SECRET));
    const sameKeyCut = sameKey.lastIndexOf(".");
    assert.equal(sameKey.slice(sameKeyCut + 1), hmacToken(SECRET, sameKey.slice(0, sameKeyCut)));

    const auth = createAuthenticator({ mode: "hmac", secret: SECRET });
    assert.equal((await auth.verify(signingInput, signature)).ok, false);
  });
});
