import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { SignJWT, importJWK, type JWK } from "jose";
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createIdentityVerifier,
  generateAgentKey,
  mintIdentityAssertion,
  withReplayGuard,
} from "../../sidecar/identity/index.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";

let redis: Redis;
let prefix: string;
let dir: string;
let keyFile: string;
let bundle: string;
const ID = "spiffe://example.org/agent/once";

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  prefix = testPrefix("replay");
  dir = await mkdtemp(join(tmpdir(), "lh-replay-"));
  const k = await generateAgentKey({ id: ID, outDir: dir });
  keyFile = k.keyFile;
  bundle = k.bundleFile;
});
afterAll(async () => {
  redis.disconnect();
  await dropPrefix(prefix);
  await rm(dir, { recursive: true, force: true });
});

describe("one-time identity tokens (identity.oneTimeJti)", () => {
  it("accepts a token once and refuses its replay; a fresh assertion passes", async () => {
    const verifier = withReplayGuard(
      createIdentityVerifier({
        audience: "leasehold",
        trust: [{ kind: "agents", jwks: bundle, subjects: ["spiffe://example.org/agent/*"] }],
        maxTokenLifetime: 3600,
        clockSkew: 30,
      }),
      { redis, prefix, clockSkew: 30 },
    );
    const jwt = await mintIdentityAssertion({ keyFile, audience: "leasehold" });
    expect((await verifier.verify(jwt)).subject).toBe(ID);
    await expect(verifier.verify(jwt)).rejects.toMatchObject({
      code: "unauthenticated",
      message: expect.stringContaining("already used"),
    });
    const fresh = await mintIdentityAssertion({ keyFile, audience: "leasehold" });
    expect((await verifier.verify(fresh)).subject).toBe(ID);
  });

  it("a read-only use ({ oneTime: false }) may present a token again and does not spend it", async () => {
    const verifier = withReplayGuard(
      createIdentityVerifier({
        audience: "leasehold",
        trust: [{ kind: "agents", jwks: bundle, subjects: ["spiffe://example.org/agent/*"] }],
        maxTokenLifetime: 300,
        clockSkew: 30,
      }),
      { redis, prefix, clockSkew: 30 },
    );
    const jwt = await mintIdentityAssertion({ keyFile, audience: "leasehold" });
    const readOnly = { oneTime: false };
    expect((await verifier.verify(jwt, readOnly)).subject).toBe(ID);
    expect((await verifier.verify(jwt, readOnly)).subject).toBe(ID);
    // Unspent by the reads: the first state-changing use passes, the second is a replay.
    expect((await verifier.verify(jwt, { oneTime: true })).subject).toBe(ID);
    await expect(verifier.verify(jwt)).rejects.toMatchObject({
      code: "unauthenticated",
      message: expect.stringContaining("already used"),
    });
    expect((await verifier.verify(jwt, readOnly)).subject).toBe(ID);
  });

  it("refuses a token without jti", async () => {
    const verifier = withReplayGuard(
      createIdentityVerifier({
        audience: "leasehold",
        trust: [{ kind: "agents", jwks: bundle, subjects: ["spiffe://example.org/agent/*"] }],
        maxTokenLifetime: 3600,
        clockSkew: 30,
      }),
      { redis, prefix, clockSkew: 30 },
    );
    const priv = JSON.parse(await readFile(keyFile, "utf8")) as JWK;
    const key = await importJWK(priv, "EdDSA");
    const noJti = await new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA", kid: priv.kid ?? "", typ: "JWT" })
      .setSubject(ID)
      .setAudience("leasehold")
      .setIssuedAt()
      .setExpirationTime("1m")
      .sign(key);
    await expect(verifier.verify(noJti)).rejects.toMatchObject({
      code: "unauthenticated",
      message: expect.stringContaining("no jti"),
    });
  });
  it("deferSpend: checks the token, spends nothing, and hands back the key a later SET NX spends", async () => {
    const verifier = withReplayGuard(
      createIdentityVerifier({
        audience: "leasehold",
        trust: [{ kind: "agents", jwks: bundle, subjects: ["spiffe://example.org/agent/*"] }],
        maxTokenLifetime: 300,
        clockSkew: 30,
      }),
      { redis, prefix, clockSkew: 30 },
    );
    const jwt = await mintIdentityAssertion({ keyFile, audience: "leasehold" });
    const deferred = await verifier.verify(jwt, { deferSpend: true });
    expect(deferred.subject).toBe(ID);
    const spend = deferred.spend;
    if (!spend) throw new Error("no spend handed back");
    expect(spend.key.startsWith(`${prefix}idjti:`)).toBe(true);
    expect(spend.ttlMs).toBeGreaterThan(30_000);
    expect(spend.ttlMs).toBeLessThanOrEqual(330_000);
    expect(await redis.exists(spend.key)).toBe(0);
    // The same key the guard spends itself: once spent by the caller, the token is a replay.
    expect(await redis.set(spend.key, "1", "PX", spend.ttlMs, "NX")).toBe("OK");
    await expect(verifier.verify(jwt)).rejects.toMatchObject({
      code: "unauthenticated",
      message: expect.stringContaining("already used"),
    });
    // A read-only use has nothing to spend.
    expect((await verifier.verify(jwt, { oneTime: false })).spend).toBeUndefined();
  });
});
