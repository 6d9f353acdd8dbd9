import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ErrorBody, type HttpResult, StackClient } from "../support/e2e-client.js";
import { REDIS_URL } from "../support/redis.js";
import { type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/*
 * Issue 16, attack 2 (the lease-record part), through the built CLI and HTTP against Redis,
 * PostgreSQL and Vault: whoever can write Redis edits a lease record (extends it, revives an
 * ended one, moves it to another agent). Every lease record carries a MAC keyed by a secret in
 * Vault, so each edit gets 401, an audit record naming the lease, and changes nothing.
 */

const AGENT_A = "spiffe://example.org/agent/a";
const AGENT_B = "spiffe://example.org/agent/b";
const ACCOUNTS = ["app_mac_1", "app_mac_2", "app_mac_3"];
const TEN_YEARS_MS = 10 * 365 * 86_400_000;

let stack: Stack;
let c: StackClient;
let admin: string;
let redis: Redis;
const read = (ttl = 60) => ({
  resource: "orders-db",
  task: { id: "MAC-1" },
  intent: { action: "read", tool: "psql" },
  ttl,
});

beforeAll(async () => {
  stack = await startStack();
  c = new StackClient(stack);
  admin = await c.adminToken();
  redis = new Redis(REDIS_URL);
  for (const [i, a] of ACCOUNTS.entries()) await stack.createRole(a, `initial-mac-${i}-123456789`);
  await c.registerPostgres("orders-db", { accounts: ACCOUNTS });
}, 120_000);

afterAll(async () => {
  redis?.disconnect();
  await stack?.close();
});

const leaseKey = (id: string) => `${stack.prefix}{r:orders-db}:lease:${id}`;

function expectIntegrityRefusal(r: HttpResult, secrets: string[]): void {
  expect(r.status, JSON.stringify(r.json)).toBe(401);
  const e = (r.json as unknown as ErrorBody).error;
  expect(e.code).toBe("unauthenticated");
  expect(e.message).toBe("the lease record failed its integrity check");
  const text = JSON.stringify(r.json);
  for (const s of secrets) expect(text).not.toContain(s);
}

/** The lease_integrity audit records about a lease; none carries a token or a password. */
async function integrityRecords(id: string, secrets: string[]) {
  const records = (await c.auditRecords()).filter(
    (r) => r.event === "decision" && r.scope === "lease_integrity" && r.lease_id === id,
  );
  for (const r of records) {
    expect(r.decision).toBe("deny");
    const text = JSON.stringify(r);
    for (const s of secrets) expect(text).not.toContain(s);
  }
  return records;
}

async function leaseOf(id: string): Promise<Record<string, unknown>> {
  const r = await c.http("GET", `/v1/leases/${id}`, { token: admin });
  expect(r.status).toBe(200);
  return r.json;
}

async function activeLeaseIds(): Promise<string[]> {
  const all: string[] = [];
  for (const agent of [AGENT_A, AGENT_B]) {
    const r = await c.http("GET", `/v1/leases?agent=${encodeURIComponent(agent)}`, { token: admin });
    expect(r.status).toBe(200);
    all.push(...(r.json.leases as Array<{ id: string }>).map((l) => l.id));
  }
  return all.sort();
}

describe("attack 2: a lease record edited in Redis", () => {
  it("an expiry extended in Redis gets 401 and is audited as tampered; the reaper still ends the lease on time", async () => {
    const { id, token, password } = await c.checkoutAndReveal("a", read(5));
    const { account } = (await leaseOf(id)) as { account: string };
    const far = String(Date.now() + TEN_YEARS_MS);
    await redis.hset(leaseKey(id), { expires_at: far, max_expires_at: far });

    const cred = await c.http("GET", `/v1/leases/${id}/credential`, { token });
    expectIntegrityRefusal(cred, [password, token]);
    const renew = await c.http("POST", `/v1/leases/${id}/renew`, { token, body: { ttl: 60 } });
    expectIntegrityRefusal(renew, [password, token]);
    expect((await integrityRecords(id, [password, token])).length).toBeGreaterThanOrEqual(2);
    // The refusals changed nothing: the password in Vault is the one handed out.
    expect((await c.vaultAccount("orders-db", account)).password).toBe(password);

    // The forged expiry does not keep the lease from the reaper, nor its password alive.
    await waitFor("the reaper to end the tampered lease", async () => (await leaseOf(id)).state === "ended");
    await c.waitForAccounts("orders-db", "available");
    expect(await stack.canLogin(account, password)).toBe(false);
    const after = await c.http("GET", `/v1/leases/${id}/credential`, { token });
    expect(after.status).toBe(401);
  });

  it("an ended lease set back to active in Redis gets 401; the password is not returned", async () => {
    const { id, token, password } = await c.checkoutAndReveal("a", read());
    const { account } = (await leaseOf(id)) as { account: string };
    const checkin = await c.http("DELETE", `/v1/leases/${id}`, { token });
    expect(checkin.status).toBe(202);
    await c.waitForAccounts("orders-db", "available");
    const vaultBefore = (await c.vaultAccount("orders-db", account)).password;
    const leasesBefore = await activeLeaseIds();

    await redis.hset(leaseKey(id), { state: "active" });
    await redis.hdel(leaseKey(id), "ended_at", "end_reason");
    const cred = await c.http("GET", `/v1/leases/${id}/credential`, { token });
    expectIntegrityRefusal(cred, [password, vaultBefore, token]);
    expect(cred.json.password).toBeUndefined();
    expect(await integrityRecords(id, [password, vaultBefore, token])).toHaveLength(1);

    // Nothing changed: the rotated password stands, the old one stays dead, no lease was added.
    expect((await c.vaultAccount("orders-db", account)).password).toBe(vaultBefore);
    expect(await stack.canLogin(account, password)).toBe(false);
    expect(await activeLeaseIds()).toEqual(leasesBefore);
  });

  it("a lease moved to another agent in Redis gets 401", async () => {
    const { id, token, password } = await c.checkoutAndReveal("a", read());
    const { account } = (await leaseOf(id)) as { account: string };
    const leasesBefore = await activeLeaseIds();
    const json = JSON.parse((await redis.hget(leaseKey(id), "json")) as string) as { agent: string };
    expect(json.agent).toBe(AGENT_A);
    await redis.hset(leaseKey(id), { json: JSON.stringify({ ...json, agent: AGENT_B }) });

    const cred = await c.http("GET", `/v1/leases/${id}/credential`, { token });
    expectIntegrityRefusal(cred, [password, token]);
    const tool = await c.http("POST", `/v1/leases/${id}/tool-calls`, {
      token,
      body: { action: "read", tool: "psql" },
    });
    expect(tool.status).toBe(401);
    const records = await integrityRecords(id, [password, token]);
    expect(records.length).toBeGreaterThanOrEqual(2);
    // The audit names the lease from the signed token, never the agent the edited record claims.
    for (const r of records) expect(r.agent).toBeUndefined();

    // Nothing changed: the password in Vault is the one handed out and still works for its holder.
    expect((await c.vaultAccount("orders-db", account)).password).toBe(password);
    expect(await stack.canLogin(account, password)).toBe(true);
    expect(await activeLeaseIds()).toEqual(leasesBefore);
  });
});
