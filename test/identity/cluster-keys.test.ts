import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import type { JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterKeys, createLeaseTokenService, loadLeaseTokenKeys } from "../../sidecar/identity/index.js";
import { createLogger } from "../../sidecar/logger.js";
import { VaultStore } from "../../sidecar/secrets/index.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { useVault, type VaultHandle } from "../support/vault.js";
import { waitFor } from "../support/wait-for.js";

let redis: Redis;
let prefix: string;
let dir: string;
let vault: VaultHandle;
let secrets: VaultStore;

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  prefix = testPrefix("cluster-keys");
  dir = await mkdtemp(join(tmpdir(), "lh-cluster-keys-"));
  vault = await useVault();
  secrets = new VaultStore({
    address: vault.address,
    auth: { method: "token", token: vault.token },
    mount: vault.mount,
    prefix: `lh-cluster-keys-${randomBytes(4).toString("hex")}`,
    timeoutMs: 5_000,
    log: createLogger("silent"),
  });
});
afterAll(async () => {
  redis.disconnect();
  secrets?.close();
  await vault?.close();
  await dropPrefix(prefix);
  await rm(dir, { recursive: true, force: true });
});

const lease = (id: string) => ({
  leaseId: id,
  agent: "spiffe://example.org/agent/a",
  resource: "r",
  account: "acct",
  expiresAt: Date.now() + 60_000,
});

describe("lease-token keys shared by the sidecars of a cluster (in Vault)", () => {
  it("a token minted by one sidecar verifies on another while its key is published in Vault, and not after its expires_at", async () => {
    const a = await loadLeaseTokenKeys({ file: join(dir, "a.jwk") });
    const b = await loadLeaseTokenKeys({ file: join(dir, "b.jwk") });
    // Long enough that the checks while it is published cannot outlive it on a busy machine.
    const publisher = new ClusterKeys({ secrets, ttlMs: 2_000 });
    const reader = new ClusterKeys({ secrets, ttlMs: 2_000, cacheMs: 200, missRefreshMs: 100 });
    const minter = createLeaseTokenService({ keys: a });
    const other = createLeaseTokenService({ keys: b, extraKeyResolver: (kid) => reader.resolve(kid) });
    const token = await minter.mint(lease("lse_clusterkeys000001"));
    await expect(other.verify(token)).rejects.toMatchObject({ code: "unauthenticated" });
    await publisher.publish(a.publicJwks().keys);
    const kid = a.publicJwks().keys[0]?.kid as string;
    const stored = await secrets.read<{ jwk: JWK; expires_at: number }>(["cluster", "lease-token-keys", kid]);
    expect(stored?.data.expires_at).toBeGreaterThan(Date.now());
    expect(JSON.stringify(stored?.data)).not.toContain('"d"');
    await waitFor(
      "the reader to see the published key",
      async () => (await reader.resolve(kid)) !== undefined,
    );
    expect((await other.verify(token)).leaseId).toBe("lse_clusterkeys000001");
    expect((await reader.all()).map((k) => k.kid)).toEqual([kid]);
    // The key leaves the file (or its sidecar is gone): nobody publishes it again.
    await waitFor("the published key to pass its expires_at", async () => (await reader.all()).length === 0);
    await expect(other.verify(token)).rejects.toMatchObject({ code: "unauthenticated" });
  });

  it("a key written into Redis at the old location (prefix, jwks:, kid) is not accepted", async () => {
    const own = await loadLeaseTokenKeys({ file: join(dir, "own.jwk") });
    const cluster = new ClusterKeys({ secrets, cacheMs: 100, missRefreshMs: 50 });
    const service = createLeaseTokenService({ keys: own, extraKeyResolver: (kid) => cluster.resolve(kid) });
    // The attacker's own key pair: a valid token in every respect but who signed it.
    const attacker = await loadLeaseTokenKeys({ file: join(dir, "attacker.jwk") });
    const jwk = attacker.publicJwks().keys[0] as JWK;
    const kid = jwk.kid as string;
    await redis.set(`${prefix}jwks:${kid}`, JSON.stringify(jwk));
    await redis.sadd(`${prefix}jwks-kids`, kid);
    const forged = await createLeaseTokenService({ keys: attacker }).mint(lease("lse_victim0000000001"));
    await expect(service.verify(forged)).rejects.toMatchObject({ code: "unauthenticated" });
    expect(await cluster.resolve(kid)).toBeUndefined();
    expect(await cluster.all()).toEqual([]);
  });

  it("unknown kids are answered from a negative cache: a flood of them reads Vault at most once per interval", async () => {
    const cluster = new ClusterKeys({ secrets, cacheMs: 60_000, missRefreshMs: 60_000 });
    expect(await cluster.resolve("unknownkid0")).toBeUndefined();
    const loads = cluster.stats.loads;
    for (let i = 0; i < 200; i++)
      expect(await cluster.resolve(`random-${i}-${randomBytes(4).toString("hex")}`)).toBeUndefined();
    expect(cluster.stats.loads).toBe(loads);
    // A kid that is not a thumbprint is not looked up at all.
    expect(await cluster.resolve("../../etc/passwd")).toBeUndefined();
    expect(cluster.stats.loads).toBe(loads);
  });
});
