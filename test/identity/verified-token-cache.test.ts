import { join } from "node:path";
import type { CryptoKey } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createLeaseTokenService,
  loadLeaseTokenKeys,
  tokenDigest,
  VerifiedTokenCache,
} from "../../sidecar/identity/index.js";
import { expectRefusal, leaseTokenInput, tempDir } from "./support.js";

// A remembered verification must refuse everything a full verification refuses: these tests fill
// the cache with a token's first use, then change what the next use depends on.
const T0 = 1_900_000_000_000;
let dir: string;
let cleanup: () => Promise<void>;

const lease = (expiresAt: number) => leaseTokenInput(T0, { expiresAt });

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir("verified-cache"));
});
afterAll(async () => {
  await cleanup();
});

describe("verified lease tokens", () => {
  it("answer the same claims on a second use, and lease_expired once the token expires", async () => {
    let now = T0;
    const keys = await loadLeaseTokenKeys({ file: join(dir, "expiry", "signing.jwk") });
    const service = createLeaseTokenService({ keys, now: () => now });
    const token = await service.mint(lease(T0 + 10_000));
    const first = await service.verify(token);
    expect(await service.verify(token)).toEqual(first);
    expect(Object.isFrozen(first)).toBe(true);
    now = T0 + 9_999;
    await expect(service.verify(token)).resolves.toEqual(first);
    now = T0 + 10_000;
    await expectRefusal(service.verify(token), token, "lease token expired", "lease_expired");
    // And again, now that the remembered entry is gone.
    await expectRefusal(service.verify(token), token, "lease token expired", "lease_expired");
  });

  it("are refused once their signing key is no longer held", async () => {
    let now = T0;
    const keys = await loadLeaseTokenKeys({
      file: join(dir, "pruned", "signing.jwk"),
      retentionSeconds: 60,
      now: () => now,
    });
    const service = createLeaseTokenService({ keys, now: () => now });
    const token = await service.mint(lease(T0 + 3600_000));
    const kid = keys.currentKid;
    await expect(service.verify(token)).resolves.toMatchObject({ kid });
    await keys.rotate();
    now += 61_000;
    await keys.rotate();
    expect(keys.kids()).not.toContain(kid);
    await expectRefusal(service.verify(token), token, "signing key unknown");
  });

  it("do not vouch for a token that differs by one character", async () => {
    const keys = await loadLeaseTokenKeys({ file: join(dir, "tamper", "signing.jwk") });
    const service = createLeaseTokenService({ keys, now: () => T0 });
    const token = await service.mint(lease(T0 + 300_000));
    await service.verify(token);
    const last = token.at(-2) === "A" ? "B" : "A";
    const forged = `${token.slice(0, -2)}${last}${token.at(-1)}`;
    await expectRefusal(service.verify(forged), forged, "signature invalid");
    await expect(service.verify(token)).resolves.toMatchObject({ leaseId: "lse_test_1" });
  });

  it("verify every use in full with verifiedCacheSize 0", async () => {
    let now = T0;
    const keys = await loadLeaseTokenKeys({ file: join(dir, "off", "signing.jwk") });
    const service = createLeaseTokenService({ keys, now: () => now, verifiedCacheSize: 0 });
    const token = await service.mint(lease(T0 + 10_000));
    await expect(service.verify(token)).resolves.toMatchObject({ leaseId: "lse_test_1" });
    now = T0 + 10_000;
    await expectRefusal(service.verify(token), token, "lease token expired", "lease_expired");
  });
});

describe("VerifiedTokenCache", () => {
  it("holds at most its size, the oldest leaving first, and nothing at size 0", async () => {
    const keys = await loadLeaseTokenKeys({ file: join(dir, "bound", "signing.jwk") });
    const key = (await keys.verificationKey(keys.currentKid)) as CryptoKey;
    const entry = (leaseId: string) => ({
      claims: { leaseId, agent: "a", resource: "r", account: "", expiresAt: 0, kid: keys.currentKid },
      key,
      exp: 1,
      nbf: undefined,
    });
    const cache = new VerifiedTokenCache(2);
    for (const id of ["one", "two", "three"]) cache.set(tokenDigest(id), entry(id));
    expect(cache.size).toBe(2);
    expect(cache.get(tokenDigest("one"))).toBeUndefined();
    expect(cache.get(tokenDigest("three"))?.claims.leaseId).toBe("three");
    const off = new VerifiedTokenCache(0);
    off.set(tokenDigest("one"), entry("one"));
    expect(off.enabled).toBe(false);
    expect(off.size).toBe(0);
  });

  it("names a token by its SHA-256, never by the token itself", () => {
    const digest = tokenDigest("header.payload.signature");
    expect(digest).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(digest).not.toContain("payload");
  });
});
