import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLUSTER_VAULT_PATH, ClusterIdentity } from "../../sidecar/cluster/index.js";
import { LeaseholdError } from "../../sidecar/errors.js";
import { createLogger } from "../../sidecar/logger.js";
import type { AccountRecord } from "../../sidecar/resources/types.js";
import { vaultPaths } from "../../sidecar/resources/vault-paths.js";
import type { VaultStore } from "../../sidecar/secrets/index.js";
import type { CheckoutOk } from "../../sidecar/service/index.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { testVaultStore, useVault, type VaultHandle } from "../support/vault.js";
import { waitFor } from "../support/wait-for.js";
import { mariadbLogin } from "../support/mariadb.js";

/*
 * A sidecar cluster is one Vault prefix with one Redis keyspace. A second sidecar that shares the
 * Vault prefix but not the Redis keyspace (a wrong database or prefix) must not break a lease of
 * the first: it refuses checkouts and rotates nothing before the recorded lease ends. After a
 * real loss of Redis data, `cluster adopt` takes the keyspace back and rotates dirty accounts.
 */

let vault: VaultHandle;
let redis: Redis;
const log = createLogger("silent");

function identity(secrets: VaultStore, redisPrefix: string): ClusterIdentity {
  return new ClusterIdentity({
    secrets,
    redis,
    redisPrefix,
    names: { vault: `vault test ${vault.mount}/x`, redis: `redis test prefix "${redisPrefix}"` },
    log,
  });
}

beforeAll(async () => {
  vault = await useVault();
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  redis?.disconnect();
  await vault?.close();
});

describe("the cluster id in Vault and Redis", () => {
  const prefixes: string[] = [];
  const fresh = (name: string) => {
    const p = testPrefix(name);
    prefixes.push(p);
    return p;
  };
  afterAll(async () => {
    for (const p of prefixes) await dropPrefix(p);
  });

  it("the first sidecars write one id to both, even when they start together", async () => {
    const secrets = testVaultStore(vault, `cluster-${Date.now()}-a`);
    const redisPrefix = fresh("cluster-a");
    const [a, b] = [identity(secrets, redisPrefix), identity(secrets, redisPrefix)];
    const [sa, sb] = await Promise.all([a.check(), b.check()]);
    expect(sa.status).toBe("ok");
    expect(sb).toEqual(sa);
    expect(await redis.get(`${redisPrefix}cluster:id`)).toBe(sa.status === "ok" ? sa.id : "?");
    expect(() => a.assertServing()).not.toThrow();
    secrets.close();
  });

  it("a Redis keyspace without the id, or with another, is a mismatch naming both; adopt takes it over", async () => {
    const secrets = testVaultStore(vault, `cluster-${Date.now()}-b`);
    const home = fresh("cluster-home");
    const ok = await identity(secrets, home).check();
    if (ok.status !== "ok") throw new Error("no cluster");

    const stray = fresh("cluster-stray");
    const lost = identity(secrets, stray);
    const s = await lost.check();
    expect(s).toMatchObject({ status: "cluster_mismatch", vaultId: ok.id, redisId: null });
    if (s.status !== "cluster_mismatch") throw new Error("unreachable");
    expect(s.reason).toContain(`prefix "${stray}"`);
    expect(s.reason).toContain("vault test");
    expect(s.reason).toContain("cluster adopt");
    // Nothing was written to the stray keyspace: a mismatch does not claim it.
    expect(await redis.get(`${stray}cluster:id`)).toBeNull();
    let refusal: unknown;
    try {
      lost.assertServing();
    } catch (err) {
      refusal = err;
    }
    expect(refusal).toBeInstanceOf(LeaseholdError);
    expect((refusal as LeaseholdError).code).toBe("upstream_unavailable");
    expect(await lost.confirmed()).toBe(false);

    // Another cluster's keyspace: adopting it needs force.
    await redis.set(`${stray}cluster:id`, "lhc_someone-else");
    expect((await lost.check()).status).toBe("cluster_mismatch");
    await expect(lost.adopt(false)).rejects.toMatchObject({ code: "conflict" });
    expect(await redis.get(`${stray}cluster:id`)).toBe("lhc_someone-else");
    expect(await lost.adopt(true)).toEqual({ id: ok.id, previous: "lhc_someone-else" });
    expect(lost.state()).toEqual({ status: "ok", id: ok.id });
    expect(await lost.confirmed()).toBe(true);
    secrets.close();
  });

  it("a keyspace that names a cluster this Vault prefix does not know is a mismatch too", async () => {
    const secrets = testVaultStore(vault, `cluster-${Date.now()}-c`);
    const other = fresh("cluster-other");
    await redis.set(`${other}cluster:id`, "lhc_other");
    const id = identity(secrets, other);
    expect(await id.check()).toMatchObject({
      status: "cluster_mismatch",
      vaultId: null,
      redisId: "lhc_other",
    });
    // And it did not write an id of its own into Vault on the way.
    expect(await secrets.read(CLUSTER_VAULT_PATH)).toBeNull();
    await expect(id.adopt(true)).rejects.toMatchObject({ code: "conflict" });
    secrets.close();
  });
});

describe("a second sidecar on the same Vault prefix with another Redis keyspace", () => {
  let first: InProcessSidecar;
  let second: InProcessSidecar;
  let secrets: VaultStore;
  let account: string;
  let n = 0;
  const meta = () => ({ requestId: `req_cluster_${++n}` });
  const record = async () =>
    (await secrets.read<AccountRecord>(vaultPaths.account(first.resource, account)))?.data as AccountRecord;
  const checkout = (lh: InProcessSidecar) => async () =>
    lh.sidecar.leaseService.checkout(
      await lh.identity("a"),
      {
        resource: first.resource,
        task: { id: "T-cluster" },
        intent: { action: "read", tool: "sql" },
        ttl: 300,
      },
      meta(),
    );

  beforeAll(async () => {
    first = await startInProcessSidecar({ vault });
    second = await startInProcessSidecar({ vault, vaultPrefix: first.vaultPrefix });
    secrets = testVaultStore(vault, first.vaultPrefix);
    account = (first.registration.accounts as string[])[0] as string;
    await first.sidecar.resourceService.register(first.registration, {
      dryRun: false,
      pathName: first.resource,
      actor: "admin",
    });
  });

  afterAll(async () => {
    secrets?.close();
    await second?.close();
    await first?.close();
  });

  it("refuses checkouts and leaves the first sidecar's leased password working until the lease ends", async () => {
    expect(first.sidecar.cluster.state().status).toBe("ok");
    expect(second.sidecar.cluster.state().status).toBe("cluster_mismatch");
    const out = (await checkout(first)()) as CheckoutOk;
    const cred = await first.sidecar.leaseService.credential(out.token, out.lease.id, meta());

    await expect(checkout(second)()).rejects.toMatchObject({ code: "upstream_unavailable" });
    const ready = await second.sidecar.app.inject({ method: "GET", url: "/readyz" });
    expect(ready.statusCode).toBe(503);
    expect(ready.json().reasons.cluster).toMatch(/^cluster_mismatch: .*prefix "lhtest:docs:/);
    expect(ready.json().reasons.cluster).toContain(first.vaultPrefix);

    // Its reconciler and any rotation it is asked for leave the account alone.
    await second.sidecar.reconciler.reconcileAll();
    await second.sidecar.resourceService.rotateAll(first.resource, "admin");
    expect(await record()).toMatchObject({
      state: "leased",
      lease_id: out.lease.id,
      password: cred.password,
    });
    expect(await mariadbLogin(account, cred.password)).toBe(true);
    expect((await first.sidecar.leaseService.getOwn(out.token, out.lease.id)).state).toBe("active");

    // Once the recorded lease is over (as Vault records it), the held sidecar rotates it too.
    const path = vaultPaths.account(first.resource, account);
    const entry = await secrets.read<AccountRecord>(path);
    if (!entry) throw new Error("no account record");
    await secrets.write(path, { ...entry.data, max_expires_at: Date.now() - 60_000 }, entry.version);
    await second.sidecar.reconciler.reconcileAll();
    const after = await record();
    expect(after.state).toBe("available");
    expect(after.password).not.toBe(cred.password);
    expect(await mariadbLogin(account, cred.password)).toBe(false);
    expect(await mariadbLogin(account, after.password)).toBe(true);
    await first.sidecar.leaseService.checkin(out.token, out.lease.id, meta());
  });

  it("after the first sidecar's Redis loses its data, the account waits for adopt, which rotates it at once", async () => {
    // The check-in's rotation runs in the background: wait until the account is free again.
    const out = await waitFor("a checkout on the first sidecar", async () => {
      try {
        return (await checkout(first)()) as CheckoutOk;
      } catch (err) {
        if ((err as LeaseholdError).code === "resource_busy") return undefined;
        throw err;
      }
    });
    const cred = await first.sidecar.leaseService.credential(out.token, out.lease.id, meta());
    // The whole keyspace of the first sidecar goes (a Redis restarted without persistence).
    await dropPrefix(first.redisPrefix);
    expect((await first.sidecar.cluster.check()).status).toBe("cluster_mismatch");
    await expect(checkout(first)()).rejects.toMatchObject({ code: "upstream_unavailable" });
    await first.sidecar.reconciler.reconcileAll();
    expect(await record()).toMatchObject({
      state: "leased",
      lease_id: out.lease.id,
      password: cred.password,
    });

    const token = first.sidecar.adminToken;
    const adopted = await first.sidecar.app.inject({
      method: "POST",
      url: "/v1/cluster/adopt",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      payload: JSON.stringify({ reason: "redis restarted without persistence" }),
    });
    expect(adopted.statusCode).toBe(200);
    expect(adopted.json()).toMatchObject({ status: "ok", previous_redis_cluster_id: null });
    // Rotated by the adoption itself, before it answered.
    const after = await record();
    expect(after.state).toBe("available");
    expect(await mariadbLogin(account, cred.password)).toBe(false);
    expect(await mariadbLogin(account, after.password)).toBe(true);
  });
});
