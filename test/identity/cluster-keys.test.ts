import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterKeys, createLeaseTokenService, loadLeaseTokenKeys } from "../../sidecar/identity/index.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { waitFor } from "../support/wait-for.js";

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
    // Long enough that the checks while it is published cannot outlive it on a busy machine.
    const cluster = new ClusterKeys({ redis, prefix, ttlMs: 2_000 });
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
    // The published key expires on Redis' clock: wait for it to be gone, then for the refusal.
    await waitFor("the published key to expire in Redis", async () => (await cluster.all()).length === 0);
    await expect(other.verify(token)).rejects.toMatchObject({ code: "unauthenticated" });
    expect(await cluster.all()).toEqual([]);
  });
});
