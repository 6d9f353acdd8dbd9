import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterKeys, createLeaseTokenService, loadLeaseTokenKeys } from "../../sidecar/identity/index.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";

let redis: Redis;
let prefix: string;
let dir: string;

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  prefix = testPrefix("cluster-keys");
  dir = await mkdtemp(join(tmpdir(), "lh-cluster-keys-"));
});
afterAll(async () => {
  redis.disconnect();
  await dropPrefix(prefix);
  await rm(dir, { recursive: true, force: true });
});

describe("lease-token keys shared by the sidecars of a cluster", () => {
  it("a token minted by one sidecar verifies on another while its key is published, and not after", async () => {
    const a = await loadLeaseTokenKeys({ file: join(dir, "a.jwk") });
    const b = await loadLeaseTokenKeys({ file: join(dir, "b.jwk") });
    const cluster = new ClusterKeys({ redis, prefix, ttlMs: 600 });
    const minter = createLeaseTokenService({ keys: a });
    const other = createLeaseTokenService({ keys: b, extraKeyResolver: (kid) => cluster.resolve(kid) });
    const token = await minter.mint({
      leaseId: "lse_clusterkeys000001",
      agent: "spiffe://example.org/agent/a",
      resource: "r",
      account: "acct",
      expiresAt: Date.now() + 60_000,
    });
    await expect(other.verify(token)).rejects.toMatchObject({ code: "unauthenticated" });
    await cluster.publish(a.publicJwks().keys);
    expect((await other.verify(token)).leaseId).toBe("lse_clusterkeys000001");
    const listed = await cluster.all();
    expect(listed.map((k) => k.kid)).toEqual(a.publicJwks().keys.map((k) => k.kid));
    expect(JSON.stringify(listed)).not.toContain('"d"');
    // The key leaves the file (or its sidecar is gone): nobody publishes it again.
    await new Promise((r) => setTimeout(r, 800));
    await expect(other.verify(token)).rejects.toMatchObject({ code: "unauthenticated" });
    expect(await cluster.all()).toEqual([]);
  });
});
