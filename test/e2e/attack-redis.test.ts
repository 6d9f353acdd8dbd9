import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import type { JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLeaseTokenService, loadLeaseTokenKeys } from "../../sidecar/identity/index.js";
import { StackClient } from "../support/e2e-client.js";
import { REDIS_URL } from "../support/redis.js";
import { type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/*
 * Issue 16, attack 2 (the key and schedule part), through the built CLI and HTTP against Redis,
 * PostgreSQL and Vault. Redis is a cache, not a root of trust: a public key written into Redis
 * verifies no lease token, and a lease taken out of Redis' expiry schedule is still rotated
 * once the maximum expiry recorded in Vault has passed.
 */

const AGENT_A = "spiffe://example.org/agent/a";
const POLICY = `@id("agents-read-any")
permit (
  principal,
  action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"],
  resource
)
when { context.intent == "read" && context.ttl <= 600 };
`;
const READ = { task: { id: "REDIS-1" }, intent: { action: "read", tool: "psql" } };

let stack: Stack;
let c: StackClient;
let admin: string;
let redis: Redis;
let dir: string;

beforeAll(async () => {
  // The reconciler runs every second here, so the max-expiry rotation is seen quickly.
  stack = await startStack({ policy: POLICY, config: { rotation: { reconcileInterval: 1 } } });
  c = new StackClient(stack);
  admin = await c.adminToken();
  redis = new Redis(REDIS_URL);
  dir = await mkdtemp(join(tmpdir(), "lh-attack-redis-"));
  await stack.createRole("app_redis_keys", "initial-redis-keys-123456789");
  await stack.createRole("app_redis_sched", "initial-redis-sched-123456789");
  await c.registerPostgres("keys-db", { accounts: ["app_redis_keys"] });
  await c.registerPostgres("sched-db", {
    accounts: ["app_redis_sched"],
    extra: { lease: { defaultTtl: 2, maxTtl: 2 } },
  });
}, 120_000);

afterAll(async () => {
  redis?.disconnect();
  await stack?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function leaseOf(id: string): Promise<Record<string, unknown>> {
  const r = await c.http("GET", `/v1/leases/${id}`, { token: admin });
  expect(r.status).toBe(200);
  return r.json;
}

describe("attack 2: Redis is a cache, not a root of trust", () => {
  it("a lease-token key planted in Redis mints nothing: a token signed with it gets 401 and no password", async () => {
    const victim = await c.checkoutAndReveal("a", { ...READ, resource: "keys-db", ttl: 120 });
    const { account } = (await leaseOf(victim.id)) as { account: string };

    // The attacker's own key pair, its public half where sidecars once looked (and any
    // plausible new Redis place): the token is right in every respect but who signed it.
    const attacker = await loadLeaseTokenKeys({ file: join(dir, "attacker.jwk") });
    const pub = attacker.publicJwks().keys[0] as JWK;
    const kid = pub.kid as string;
    const p = stack.prefix;
    await redis.set(`${p}jwks:${kid}`, JSON.stringify(pub));
    await redis.sadd(`${p}jwks-kids`, kid);
    await redis.set(
      `${p}cluster:lease-token-keys:${kid}`,
      JSON.stringify({ jwk: pub, expires_at: Date.now() + 3_600_000 }),
    );
    await redis.set(`${p}lease-token-keys:${kid}`, JSON.stringify(pub));
    await redis.hset(`${p}jwks`, kid, JSON.stringify(pub));
    const forged = await createLeaseTokenService({ keys: attacker }).mint({
      leaseId: victim.id,
      agent: AGENT_A,
      resource: "keys-db",
      account,
      expiresAt: Date.now() + 60_000,
    });
    const auditBefore = (await c.auditRecords()).length;

    const cred = await c.http("GET", `/v1/leases/${victim.id}/credential`, { token: forged });
    expect(cred.status, JSON.stringify(cred.json)).toBe(401);
    expect((cred.json as { error: { code: string } }).error.code).toBe("unauthenticated");
    expect(cred.json.password).toBeUndefined();
    expect(JSON.stringify(cred.json)).not.toContain(victim.password);
    // The published keys are this sidecar's own (and Vault's): the planted one is not served.
    const jwks = await c.http("GET", "/.well-known/jwks.json", {});
    expect(jwks.status).toBe(200);
    expect((jwks.json.keys as JWK[]).map((k) => k.kid)).not.toContain(kid);
    // No audit record carries the password or either token.
    const text = JSON.stringify((await c.auditRecords()).slice(auditBefore));
    for (const s of [victim.password, victim.token, forged]) expect(text).not.toContain(s);

    // Nothing changed: the lease is the victim's, its password in Vault is the one it saw,
    // and still works for its holder.
    expect(await leaseOf(victim.id)).toMatchObject({ agent: AGENT_A, state: "active" });
    expect((await c.vaultAccount("keys-db", account)).password).toBe(victim.password);
    expect(await stack.canLogin(account, victim.password)).toBe(true);
    const own = await c.http("GET", `/v1/leases/${victim.id}/credential`, { token: victim.token });
    expect(own.status).toBe(200);
  });

  it("a lease taken out of Redis' expiry schedule is still rotated once its maximum expiry recorded in Vault has passed", async () => {
    const { id, password } = await c.checkoutAndReveal("a", { ...READ, resource: "sched-db", ttl: 2 });
    const { account } = (await leaseOf(id)) as { account: string };
    // What write access to Redis allows: the reaper never hears of this lease again.
    expect(await redis.zrem(`${stack.prefix}{r:sched-db}:due`, id)).toBe(1);
    expect(await c.vaultAccount("sched-db", account)).toMatchObject({ state: "leased", lease_id: id });

    await waitFor("the reconciler to rotate the account past the lease's maximum expiry", async () => {
      const rec = await c.vaultAccount("sched-db", account);
      return rec.state === "available" && rec.password !== password;
    });
    // The password the agent saw is refused by PostgreSQL; Vault's new one works.
    expect(await stack.canLogin(account, password)).toBe(false);
    const fresh = await c.vaultAccount("sched-db", account);
    expect(await stack.canLogin(account, fresh.password)).toBe(true);
    // The lease was ended in Redis too.
    expect(await leaseOf(id)).toMatchObject({ state: "ended" });
  });
});
