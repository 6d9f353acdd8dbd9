import { createHash, generateKeyPairSync, type KeyObject, randomUUID, sign } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import { calculateJwkThumbprint, decodeJwt, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDpopKey } from "../../sidecar/client/dpop-key.js";
import {
  accessTokenHash,
  createDpopVerifier,
  createLeaseTokenService,
  type DpopVerifier,
  dpopRequestUrl,
  loadLeaseTokenKeys,
} from "../../sidecar/identity/index.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { expectRefusal, signRaw, tempDir } from "./support.js";

const HTU = "http://127.0.0.1:7733/v1/leases/lse_dpop_test_1/credential";
const TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

let redis: Redis;
let prefix: string;
let verifier: DpopVerifier;
let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  prefix = testPrefix("dpop");
  verifier = createDpopVerifier({ replay: redis, prefix });
  ({ dir, cleanup } = await tempDir("dpop"));
});
afterAll(async () => {
  await dropPrefix(prefix);
  redis.disconnect();
  await cleanup();
});

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/** An Ed25519 key made with node:crypto, and a signer that accepts any header (as a careless client would). */
function rawKey(): { pub: JWK; priv: JWK; key: KeyObject; sign: (h: object, p: object) => string } {
  const { privateKey } = generateKeyPairSync("ed25519");
  const priv = privateKey.export({ format: "jwk" }) as JWK;
  const pub = { kty: priv.kty, crv: priv.crv, x: priv.x } as JWK;
  return {
    pub,
    priv,
    key: privateKey,
    sign: (h, p) => {
      const input = `${b64(h)}.${b64(p)}`;
      return `${input}.${sign(null, Buffer.from(input), privateKey).toString("base64url")}`;
    },
  };
}

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    htm: "GET",
    htu: HTU,
    iat: Math.floor(Date.now() / 1000),
    jti: randomUUID(),
    ath: accessTokenHash(TOKEN),
    ...overrides,
  };
}

describe("DPoP proofs (RFC 9449)", () => {
  it("accepts a fresh proof by the bound key and returns the key's thumbprint", async () => {
    const key = await createDpopKey();
    const proof = await key.proof("GET", HTU, TOKEN);
    const out = await verifier.verify({ proof, htm: "GET", htu: HTU, accessToken: TOKEN, jkt: key.jkt });
    expect(out.jkt).toBe(key.jkt);
    expect(out.jti).toBe(decodeJwt(proof).jti);
  });

  it("refuses a proof used twice (jti replay), remembered in Redis", async () => {
    const key = await createDpopKey();
    const proof = await key.proof("GET", HTU, TOKEN);
    await verifier.verify({ proof, htm: "GET", htu: HTU, accessToken: TOKEN });
    await expectRefusal(
      verifier.verify({ proof, htm: "GET", htu: HTU, accessToken: TOKEN }),
      proof,
      "DPoP proof was already used",
    );
    // A second sidecar of the cluster (same Redis prefix) refuses it too.
    const other = createDpopVerifier({ replay: redis, prefix });
    await expectRefusal(
      other.verify({ proof, htm: "GET", htu: HTU, accessToken: TOKEN }),
      proof,
      "already used",
    );
    const keys = await redis.keys(`${prefix}dpop:jti:*`);
    expect(keys.length).toBeGreaterThan(0);
    const ttl = await redis.pttl(keys[0] ?? "");
    expect(ttl).toBeGreaterThan(0);
  });

  it("refuses a proof signed by another key than the token is bound to", async () => {
    const mine = await createDpopKey();
    const thief = await createDpopKey();
    const proof = await thief.proof("GET", HTU, TOKEN);
    await expectRefusal(
      verifier.verify({ proof, htm: "GET", htu: HTU, accessToken: TOKEN, jkt: mine.jkt }),
      proof,
      "DPoP proof key does not match the key the lease token is bound to",
    );
  });

  it("refuses a wrong method, URL or token hash", async () => {
    const key = await createDpopKey();
    const cases: Array<[string, string, string, string]> = [
      ["POST", HTU, TOKEN, "htm does not match"],
      ["GET", "http://127.0.0.1:7733/v1/leases/lse_other/credential", TOKEN, "htu does not match"],
      ["GET", "http://localhost:7733/v1/leases/lse_dpop_test_1/credential", TOKEN, "htu does not match"],
      ["GET", HTU, `${TOKEN}x`, "ath does not match"],
    ];
    for (const [htm, htu, token, message] of cases) {
      const proof = await key.proof("GET", HTU, TOKEN);
      await expectRefusal(verifier.verify({ proof, htm, htu, accessToken: token }), proof, message);
    }
    const noAth = await key.proof("GET", HTU);
    await expectRefusal(
      verifier.verify({ proof: noAth, htm: "GET", htu: HTU, accessToken: TOKEN }),
      noAth,
      "ath missing",
    );
  });

  it("compares htu without query or fragment, with scheme and host normalized", async () => {
    const key = await createDpopKey();
    for (const htu of [
      `${HTU}?x=1`,
      `${HTU}#frag`,
      "HTTP://127.0.0.1:7733/v1/leases/lse_dpop_test_1/credential",
    ]) {
      const proof = await key.proof("GET", htu, TOKEN);
      await expect(
        verifier.verify({ proof, htm: "GET", htu: HTU, accessToken: TOKEN }),
      ).resolves.toMatchObject({
        jkt: key.jkt,
      });
    }
  });

  it("refuses stale and future proofs", async () => {
    const k = rawKey();
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "dpop+jwt", alg: "EdDSA", jwk: k.pub };
    const stale = k.sign(header, claims({ iat: now - 61 }));
    await expectRefusal(
      verifier.verify({ proof: stale, htm: "GET", htu: HTU, accessToken: TOKEN }),
      stale,
      "DPoP proof is stale",
    );
    const future = k.sign(header, claims({ iat: now + 60 }));
    await expectRefusal(
      verifier.verify({ proof: future, htm: "GET", htu: HTU, accessToken: TOKEN }),
      future,
      "DPoP proof issued in the future",
    );
  });

  it("accepts a valid proof signed by hand with node:crypto", async () => {
    const k = rawKey();
    const proof = k.sign({ typ: "dpop+jwt", alg: "EdDSA", jwk: k.pub }, claims());
    const out = await verifier.verify({ proof, htm: "GET", htu: HTU, accessToken: TOKEN });
    expect(out.jkt).toBe(await calculateJwkThumbprint(k.pub));
  });

  it("refuses bad headers: typ, alg, private or missing jwk, key references, crit", async () => {
    const k = rawKey();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ typ: "JWT", alg: "EdDSA", jwk: k.pub }, "typ must be dpop+jwt"],
      [{ alg: "EdDSA", jwk: k.pub }, "typ must be dpop+jwt"],
      [{ typ: "dpop+jwt", alg: "ES512", jwk: k.pub }, "algorithm not allowed"],
      [{ typ: "dpop+jwt", alg: "HS256", jwk: k.pub }, "algorithm not allowed"],
      [{ typ: "dpop+jwt", alg: "none", jwk: k.pub }, "algorithm not allowed"],
      [{ typ: "dpop+jwt", alg: "EdDSA", jwk: k.priv }, "jwk must be a public key"],
      [{ typ: "dpop+jwt", alg: "EdDSA" }, "jwk header missing"],
      [{ typ: "dpop+jwt", alg: "EdDSA", jwk: { kty: "oct", k: "c2VjcmV0" } }, "jwk must be a public key"],
      [{ typ: "dpop+jwt", alg: "EdDSA", jwk: k.pub, jku: "https://evil.example/jwks" }, 'header "jku"'],
      [{ typ: "dpop+jwt", alg: "EdDSA", jwk: k.pub, x5u: "https://evil.example/cert" }, 'header "x5u"'],
      [{ typ: "dpop+jwt", alg: "EdDSA", jwk: k.pub, crit: ["exp"] }, 'header "crit"'],
      [{ typ: "dpop+jwt", alg: "ES256", jwk: k.pub }, "jwk does not fit its algorithm"],
    ];
    for (const [header, message] of cases) {
      const proof = k.sign(header, claims());
      await expectRefusal(
        verifier.verify({ proof, htm: "GET", htu: HTU, accessToken: TOKEN }),
        proof,
        message,
      );
    }
  });

  it("refuses a forged signature, missing claims and non-proofs", async () => {
    const k = rawKey();
    const other = rawKey();
    const header = { typ: "dpop+jwt", alg: "EdDSA", jwk: k.pub };
    // Signed by another key than the one in its jwk header.
    const forged = other.sign(header, claims());
    await expectRefusal(
      verifier.verify({ proof: forged, htm: "GET", htu: HTU, accessToken: TOKEN }),
      forged,
      "signature invalid",
    );
    for (const missing of ["jti", "htm", "htu", "iat"]) {
      const c = claims();
      delete c[missing];
      const proof = k.sign(header, c);
      await expectRefusal(
        verifier.verify({ proof, htm: "GET", htu: HTU, accessToken: TOKEN }),
        proof,
        "DPoP proof",
      );
    }
    for (const proof of [
      "",
      "not-a-jwt",
      `${b64({ typ: "dpop+jwt", alg: "none", jwk: k.pub })}.${b64(claims())}.`,
    ]) {
      await expectRefusal(
        verifier.verify({ proof, htm: "GET", htu: HTU, accessToken: TOKEN }),
        proof,
        "DPoP proof",
      );
    }
  });

  it("refuses unsafe verifier options", () => {
    expect(() => createDpopVerifier({ replay: redis, prefix, algorithms: ["HS256"] })).toThrow(/not allowed/);
    expect(() => createDpopVerifier({ replay: redis, prefix, algorithms: [] })).toThrow(/empty/);
  });
});

describe("dpopRequestUrl", () => {
  it("is http:// + Host + path, without query or fragment, normalized", () => {
    expect(dpopRequestUrl("127.0.0.1:7733", "/v1/leases/lse_1?x=1#f")).toBe(
      "http://127.0.0.1:7733/v1/leases/lse_1",
    );
    expect(dpopRequestUrl("LOCALHOST:80", "/v1/checkout")).toBe("http://localhost/v1/checkout");
    expect(dpopRequestUrl("[::1]:7733", "/v1/checkout")).toBe("http://[::1]:7733/v1/checkout");
    expect(dpopRequestUrl("localhost", "/a/../v1/checkout")).toBe("http://localhost/v1/checkout");
    // A path that looks protocol-relative stays a path on the request's own host.
    expect(dpopRequestUrl("127.0.0.1:7733", "//evil.example/x")).toBe(
      "http://127.0.0.1:7733//evil.example/x",
    );
    expect(dpopRequestUrl(undefined, "/v1/checkout")).toBeUndefined();
    expect(dpopRequestUrl("bad host", "/v1/checkout")).toBeUndefined();
  });

  it("ath is the base64url SHA-256 of the token", () => {
    expect(accessTokenHash(TOKEN)).toBe(createHash("sha256").update(TOKEN).digest("base64url"));
  });
});

describe("DPoP-bound lease tokens (cnf.jkt)", () => {
  it("mints cnf.jkt and verifies it back; unbound tokens carry none", async () => {
    const keys = await loadLeaseTokenKeys({ file: join(dir, "bound", "signing.jwk") });
    const service = createLeaseTokenService({ keys });
    const key = await createDpopKey();
    const input = {
      leaseId: "lse_bound_1",
      agent: "spiffe://example.org/agent/a",
      resource: "orders-db",
      account: "app_1",
      expiresAt: Date.now() + 60_000,
    };
    const bound = await service.mint({ ...input, jkt: key.jkt });
    expect(decodeJwt(bound).cnf).toEqual({ jkt: key.jkt });
    await expect(service.verify(bound)).resolves.toMatchObject({ leaseId: "lse_bound_1", jkt: key.jkt });
    const plain = await service.verify(await service.mint(input));
    expect(plain.jkt).toBeUndefined();
    await expect(service.mint({ ...input, jkt: "not a thumbprint" })).rejects.toThrow(/jkt/);
  });

  it("refuses a lease token whose cnf is not exactly { jkt }", async () => {
    const file = join(dir, "cnf", "signing.jwk");
    const keys = await loadLeaseTokenKeys({ file });
    const service = createLeaseTokenService({ keys });
    const stored = JSON.parse(await readFile(file, "utf8")) as { keys: Array<Record<string, string>> };
    const k = stored.keys[0] ?? {};
    const jwkFile = join(dir, "cnf", "raw.jwk");
    await writeFile(jwkFile, JSON.stringify({ kty: "OKP", crv: "Ed25519", x: k.x, d: k.d }), { mode: 0o600 });
    const now = Math.floor(Date.now() / 1000);
    const base = {
      iss: "leasehold",
      sub: "spiffe://example.org/agent/a",
      aud: "leasehold:lease",
      lid: "lse_cnf_1",
      res: "orders-db",
      iat: now,
      exp: now + 60,
      jti: randomUUID(),
    };
    const header = { alg: "EdDSA", kid: keys.currentKid, typ: "lh-lease+jwt" };
    for (const cnf of [
      "x",
      { jkt: "short" },
      { jkt: "A".repeat(43), x5t: "y" },
      { "x5t#S256": "A".repeat(43) },
    ]) {
      const token = await signRaw(jwkFile, header, { ...base, cnf });
      await expectRefusal(service.verify(token), token, "lease token cnf claim invalid");
    }
  });
});
