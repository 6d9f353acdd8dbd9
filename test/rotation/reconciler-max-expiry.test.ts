import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountRecord } from "../../sidecar/resources/types.js";
import { vaultPaths } from "../../sidecar/resources/vault-paths.js";
import type { VaultStore } from "../../sidecar/secrets/index.js";
import type { CheckoutOk, LeaseService } from "../../sidecar/service/index.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { REDIS_URL } from "../support/redis.js";
import { testVaultStore, useVault, type VaultHandle } from "../support/vault.js";
import { waitFor } from "../support/wait-for.js";

/*
 * Redis is a cache, not a root of trust: whoever can write to it can take a lease out of the
 * expiry schedule, but the account record in Vault carries the lease's maximum expiry, and the
 * reconciler rotates the account once it has passed, whatever Redis says.
 */

let vault: VaultHandle;
let lh: InProcessSidecar;
let svc: LeaseService;
let secrets: VaultStore;
let redis: Redis;
let account: string;
let n = 0;
const meta = () => ({ requestId: `req_maxexp_${++n}` });

const record = async () =>
  (await secrets.read<AccountRecord>(vaultPaths.account(lh.resource, account)))?.data as AccountRecord;

async function register(maxTtl: number): Promise<void> {
  await lh.sidecar.resourceService.register(
    { ...lh.registration, lease: { defaultTtl: Math.min(60, maxTtl), maxTtl } },
    { dryRun: false, pathName: lh.resource, actor: "admin", requestId: `req_register_${maxTtl}` },
  );
  await waitFor("the account to be available", async () => (await record())?.state === "available");
}

async function checkout(ttl: number): Promise<{ out: CheckoutOk; password: string }> {
  const out = (await svc.checkout(
    await lh.identity("a"),
    { resource: lh.resource, task: { id: "T-maxexp" }, intent: { action: "read", tool: "sql" }, ttl },
    meta(),
  )) as CheckoutOk;
  const cred = await svc.credential(out.token, out.lease.id, meta());
  return { out, password: cred.password };
}

/** What an attacker with Redis write access does: the lease leaves the expiry schedule. */
async function unschedule(leaseId: string): Promise<void> {
  const keys = await redis.keys(`*{r:${lh.resource}}:due`);
  expect(keys).toHaveLength(1);
  expect(await redis.zrem(keys[0] as string, leaseId)).toBe(1);
}

beforeAll(async () => {
  vault = await useVault();
  lh = await startInProcessSidecar({ vault });
  svc = lh.sidecar.leaseService;
  account = (lh.registration.accounts as string[])[0] as string;
  redis = new Redis(REDIS_URL);
  secrets = testVaultStore(vault, lh.vaultPrefix);
});

afterAll(async () => {
  redis?.disconnect();
  secrets?.close();
  await lh?.close();
  await vault?.close();
});

describe("the reconciler and a lease's maximum expiry recorded in Vault", () => {
  it("leaves alone an account leased before its recorded max expiry, even out of Redis' schedule", async () => {
    await register(600);
    const { out, password } = await checkout(60);
    const rec = await record();
    expect(rec).toMatchObject({
      state: "leased",
      lease_id: out.lease.id,
      max_expires_at: Date.parse(String(out.lease.max_expires_at)),
    });
    expect(rec.max_expires_at).toBeGreaterThan(Date.now() + 500_000);
    await unschedule(out.lease.id);
    await lh.sidecar.reconciler.reconcileAll();
    expect(await record()).toMatchObject({ state: "leased", lease_id: out.lease.id, password });
    expect((await svc.getOwn(out.token, out.lease.id)).state).toBe("active");
    await svc.checkin(out.token, out.lease.id, meta());
  });

  it("a record written before max_expires_at existed follows Redis as before: an active lease keeps it", async () => {
    await waitFor("the account to be available", async () => (await record())?.state === "available");
    const { out, password } = await checkout(60);
    const path = vaultPaths.account(lh.resource, account);
    const entry = await secrets.read<AccountRecord>(path);
    if (!entry) throw new Error("no account record");
    const { max_expires_at: _dropped, ...old } = entry.data;
    await secrets.write(path, old, entry.version);
    await unschedule(out.lease.id);
    await lh.sidecar.reconciler.reconcileAll();
    const rec = await record();
    expect(rec).toMatchObject({ state: "leased", lease_id: out.lease.id, password });
    expect(rec.max_expires_at).toBeUndefined();
    await svc.checkin(out.token, out.lease.id, meta());
  });

  it("rotates an account leased past its recorded max expiry although the lease left Redis' expiry index", async () => {
    await register(2);
    const { out, password } = await checkout(2);
    const rec = await record();
    expect(rec.max_expires_at).toBe(Date.parse(String(out.lease.max_expires_at)));
    await unschedule(out.lease.id);
    // No reaper runs here: only the reconciler can end this lease now.
    const rotated = await waitFor("the reconciler to rotate the account", async () => {
      await lh.sidecar.reconciler.reconcileAll();
      const now = await record();
      return now.state === "available" && now.password !== password ? now : undefined;
    });
    expect(rotated.lease_id).toBeUndefined();
    expect(rotated.max_expires_at).toBeUndefined();
    // The lease was ended in Redis too, not left active.
    const [leaseKey] = await redis.keys(`*{r:${lh.resource}}:lease:${out.lease.id}`);
    expect(await redis.hget(leaseKey as string, "state")).toBe("ended");
    expect(await redis.hget(leaseKey as string, "end_reason")).toBe("expired");
    // The reconciler's rotation names the lease's holder, read from the intact lease record.
    const started = await waitFor("the rotation_started record", async () => {
      const text = await readFile(join(lh.dir, "state", "audit.jsonl"), "utf8").catch(() => "");
      return text
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { event: string; lease_id?: string; agent?: string; task_id?: string })
        .find((r) => r.event === "rotation_started" && r.lease_id === out.lease.id);
    });
    expect(started).toMatchObject({ agent: "spiffe://example.org/agent/a", task_id: "T-maxexp" });
  });
});
