import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from "jose";
import { createAuthenticator, hmacToken } from "../../../shared/auth/index.ts";
import { isTetherError } from "../../../shared/errors/index.ts";

const SECRET = "s3cret-for-tests";
const nowSec = (): number => Math.floor(Date.now() / 1000);

async function hs256(claims: Record<string, unknown>, secret = SECRET): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(secret));
}

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
    const auth = createAuthenticator({ mode: "jwt", jwksUrl: `http://127.0.0.1:${port}/jwks.json` });
    const token = await new SignJWT({ sub: "d", exp: nowSec() + 60 })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .sign(rs.privateKey);
    assert.deepEqual(await auth.verify("d", token), { ok: true });

    status = 503;
    const down = createAuthenticator({ mode: "jwt", jwksUrl: `http://127.0.0.1:${port}/jwks.json` });
    const result = await down.verify("d", token);
    assert.ok(!result.ok && result.retryable === true, JSON.stringify(result));
  });
});
