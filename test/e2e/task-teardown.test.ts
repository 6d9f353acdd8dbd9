import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, LeaseholdClientError } from "../../sidecar/client/index.js";
import { expectError, type HttpResult, StackClient } from "../support/e2e-client.js";
import { type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/*
 * Issue 17, task teardown, against the built CLI and a running sidecar on a private PostgreSQL:
 * `POST /v1/tasks/{id}/complete` (the agent's identity: its own leases of the task, checked in),
 * `leasehold leases revoke --task` (an operator: every agent's leases of the task), the SDK's
 * `completeTask`. Ended leases are rotated: the passwords their holders saw stop working.
 */

const A = "spiffe://example.org/agent/a";
const B = "spiffe://example.org/agent/b";
const POLICY = `@id("agents-read")
permit (
  principal,
  action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"],
  resource
)
when { context.intent == "read" && context.ttl <= 600 };

@id("ops-revokes-orders")
permit (principal == Agent::"spiffe://example.org/operator/ops", action == Action::"revoke", resource == Resource::"orders-db");
`;
const OPS = "spiffe://example.org/operator/ops";
// A task id as agents write them: a slash, a space, a non-ASCII letter (each encoded in the path).
const TASK = "JIRA/OPS-17 ü";
const OTHER_TASK = "TICKET-18";

let stack: Stack;
let c: StackClient;
let admin: string;

/** A lease as its holder sees it: the account it got and the password revealed to it. */
interface Held {
  readonly id: string;
  readonly token: string;
  readonly account: string;
  readonly password: string;
}

async function checkout(agent: "a" | "b", resource: string, task: string): Promise<Held> {
  const body = { resource, task: { id: task }, intent: { action: "read", tool: "psql" }, ttl: 300, wait: 30 };
  const co = await c.http("POST", "/v1/checkout", { token: await c.assertion(agent), body });
  expect(co.status, JSON.stringify(co.json)).toBe(201);
  const token = String(co.json.token);
  const id = (co.json.lease as { id: string }).id;
  c.secrets.push(token);
  const cred = await c.http("GET", `/v1/leases/${id}/credential`, { token });
  expect(cred.status, JSON.stringify(cred.json)).toBe(200);
  const password = String(cred.json.password);
  c.secrets.push(password);
  return { id, token, account: String(cred.json.username), password };
}

const complete = async (agent: "a" | "b", task: string, token?: string): Promise<HttpResult> =>
  c.http("POST", `/v1/tasks/${encodeURIComponent(task)}/complete`, {
    token: token ?? (await c.assertion(agent)),
  });

const endedIds = (r: HttpResult) => (r.json.leases as Array<{ id: string }>).map((l) => l.id).sort();

/** Resolves once the password a lease revealed is refused by PostgreSQL (its account rotated). */
const rotatedAway = (h: Held) =>
  waitFor(`${h.account}'s password of ${h.id} to be refused`, async () => {
    return !(await stack.canLogin(h.account, h.password));
  });

const leaseState = async (h: Held) => {
  const r = await c.http("GET", `/v1/leases/${h.id}`, { token: admin });
  return (r.json as { state: string }).state;
};

beforeAll(async () => {
  stack = await startStack({ policy: POLICY, operators: ["ops"] });
  c = new StackClient(stack);
  admin = await c.adminToken();
  c.secrets.push(stack.adminPassword);
  const orders = ["app_orders_1", "app_orders_2", "app_orders_3"];
  const billing = ["app_billing_1", "app_billing_2"];
  for (const role of [...orders, ...billing]) await stack.createRole(role, `initial-${role}-secret`);
  await c.registerPostgres("orders-db", { accounts: orders });
  await c.registerPostgres("billing-db", { accounts: billing });
}, 180_000);

afterAll(async () => {
  await stack?.close();
});

describe("task teardown on a running sidecar", () => {
  const mine: Held[] = [];
  let otherTask: Held;
  let otherAgent: Held;

  it("the agent completes its task: its three leases on two resources end as check-ins, in one request", async () => {
    mine.push(await checkout("a", "orders-db", TASK));
    mine.push(await checkout("a", "orders-db", TASK));
    mine.push(await checkout("a", "billing-db", TASK));
    otherTask = await checkout("a", "billing-db", OTHER_TASK);
    // Task ids are the agents' own choice: b's lease of the same task id is not a's to end.
    otherAgent = await checkout("b", "orders-db", TASK);

    const identity = await c.assertion("a");
    const r = await complete("a", TASK, identity);
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    expect(endedIds(r)).toEqual(mine.map((h) => h.id).sort());
    for (const l of r.json.leases as Array<{ state: string; end_reason: string; agent: string }>) {
      expect(l).toMatchObject({ state: "ended", end_reason: "checkin", agent: A });
    }
    // The identity token is one-time, as for every state-changing request.
    expectError(await complete("a", TASK, identity), 401, "unauthenticated");

    const requestId = r.headers.get("x-request-id");
    const records = (await c.auditRecords()).filter((rec) => rec.request_id === requestId);
    const checkins = records.filter((rec) => rec.event === "checkin");
    expect(checkins.map((rec) => rec.lease_id).sort()).toEqual(mine.map((h) => h.id).sort());
    for (const rec of checkins) expect(rec).toMatchObject({ agent: A, task_id: TASK });
    expect(records.filter((rec) => rec.event === "task_teardown")).toEqual([
      expect.objectContaining({ scope: "complete", agent: A, task_id: TASK, lease_count: 3 }),
    ]);
  });

  it("every ended lease is rotated: the passwords its holder saw stop working, its token is refused", async () => {
    for (const h of mine) await rotatedAway(h);
    for (const h of mine) {
      const r = await c.http("GET", `/v1/leases/${h.id}/credential`, { token: h.token });
      expect(expectError(r, 401, "unauthenticated")).toContain("checked in");
      const resource = h.account.startsWith("app_orders") ? "orders-db" : "billing-db";
      const rec = await waitFor(`${h.account} to be available in Vault`, async () => {
        const a = await c.vaultAccount(resource, h.account);
        return a.state === "available" && a;
      });
      expect(rec.password).not.toBe(h.password);
      expect(await stack.canLogin(h.account, rec.password)).toBe(true);
    }
  });

  it("leaves another task's lease of the same agent and another agent's lease of the same task id alone", async () => {
    for (const h of [otherTask, otherAgent]) {
      expect(await leaseState(h)).toBe("active");
      const own = await c.http("GET", `/v1/leases/${h.id}/credential`, { token: h.token });
      expect(own.status, JSON.stringify(own.json)).toBe(200);
      expect(await stack.canLogin(h.account, h.password)).toBe(true);
    }
  });

  it("an agent with no lease of the task gets 202 and an empty list", async () => {
    const r = await complete("b", "TICKET-NONE");
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    expect(r.json).toEqual({ leases: [] });
    expect(await leaseState(otherAgent)).toBe("active");
  });

  it("`leasehold leases revoke --task` ends every agent's leases of the task, and prints each", async () => {
    const again = await checkout("a", "orders-db", TASK);
    const cli = await stack.cli("leases", "revoke", "--task", TASK, "--reason", "ticket closed");
    expect(cli.code, cli.stderr).toBe(0);
    for (const h of [again, otherAgent]) expect(cli.stdout).toContain(h.id);
    expect(cli.stdout).toContain(A);
    expect(cli.stdout).toContain(B);
    expect(cli.stdout).toContain(`revoked 2 lease(s) of task ${TASK}`);
    expect(cli.stdout).not.toContain(otherTask.id);

    for (const h of [again, otherAgent]) {
      expect(await leaseState(h)).toBe("ended");
      expectError(await c.http("GET", `/v1/leases/${h.id}`, { token: h.token }), 401, "lease_revoked");
      await rotatedAway(h);
    }
    expect(await leaseState(otherTask)).toBe("active");

    const records = await c.auditRecords();
    for (const h of [again, otherAgent]) {
      expect(records.find((rec) => rec.event === "revocation" && rec.lease_id === h.id)).toMatchObject({
        task_id: TASK,
        reason: "ticket closed",
      });
    }
    expect(records.filter((rec) => rec.event === "task_teardown" && rec.scope === "revoke")).toEqual([
      expect.objectContaining({ agent: "admin", task_id: TASK, lease_count: 2, reason: "ticket closed" }),
    ]);

    const query = await stack.cli("audit", "query", "--event", "task_teardown", "--json");
    expect(query.code, query.stderr).toBe(0);
    const page = JSON.parse(query.stdout) as { records: Array<Record<string, unknown>> };
    expect(page.records).toContainEqual(
      expect.objectContaining({ event: "task_teardown", scope: "revoke", task_id: TASK, lease_count: 2 }),
    );

    // Nothing of the task is left: b, who held a lease of it, now completes it with nothing to end.
    const after = await complete("b", TASK);
    expect(after.status).toBe(202);
    expect(after.json).toEqual({ leases: [] });
    const none = await stack.cli("leases", "revoke", "--task", TASK);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout).toContain(`revoked 0 lease(s) of task ${TASK}`);
  });

  it("a bad task id gets 400 naming the field, on both routes and from the CLI", async () => {
    for (const bad of ["bad\u0007id", "x".repeat(201), "left\u202eright"]) {
      const path = `/v1/tasks/${encodeURIComponent(bad)}`;
      const msg = expectError(
        await c.http("POST", `${path}/complete`, { token: await c.assertion("a") }),
        400,
        "invalid_request",
      );
      expect(msg).toMatch(/^path\.id: /);
      const op = expectError(
        await c.http("POST", `${path}/revoke`, { token: admin, body: {} }),
        400,
        "invalid_request",
      );
      expect(op).toMatch(/^path\.id: /);
    }
    const cli = await stack.cli("leases", "revoke", "--task", "x".repeat(201));
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain("path.id");
    expect(await leaseState(otherTask)).toBe("active");
  });

  it("a delegated lease is the acting agent's: the agent it acts for cannot complete it away", async () => {
    const ex = await c.http("POST", "/v1/token-exchange", {
      body: {
        grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
        subject_token: await c.assertion("b"),
        subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
        audience: A,
        scope: "orders-db",
      },
    });
    expect(ex.status, JSON.stringify(ex.json)).toBe(200);
    const delegation = String(ex.json.access_token);
    c.secrets.push(delegation);
    const co = await c.http("POST", "/v1/checkout", {
      token: await c.assertion("a"),
      body: {
        resource: "orders-db",
        task: { id: "DELEG-1" },
        intent: { action: "read" },
        ttl: 120,
        wait: 30,
      },
      headers: { "x-leasehold-delegation": delegation },
    });
    expect(co.status, JSON.stringify(co.json)).toBe(201);
    c.secrets.push(String(co.json.token));
    const lease = co.json.lease as { id: string; agent: string; agent_chain?: string[] };
    expect(lease).toMatchObject({ agent: A, agent_chain: [B] });

    const byDelegator = await complete("b", "DELEG-1");
    expect(byDelegator.json).toEqual({ leases: [] });
    const byActor = await complete("a", "DELEG-1");
    expect(byActor.status).toBe(202);
    expect(endedIds(byActor)).toEqual([lease.id]);
  });

  it("an operator identity revokes a task only where policy lets it revoke, all or nothing", async () => {
    const asOps = async (...args: string[]) => stack.cli("--identity-key", await c.keyFile("ops"), ...args);
    const onOrders = await checkout("a", "orders-db", "OPS-1");
    const onBilling = await checkout("a", "billing-db", "OPS-1");
    const refused = await asOps("leases", "revoke", "--task", "OPS-1");
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("policy_denied");
    expect(await leaseState(onOrders)).toBe("active");
    expect(await leaseState(onBilling)).toBe("active");
    // Revoking by agent goes the same way: a's leases on billing-db are not the operator's to end.
    const byAgent = await asOps("leases", "revoke", "--agent", A);
    expect(byAgent.code).not.toBe(0);
    expect(byAgent.stderr).toContain("policy_denied");
    expect(await leaseState(onOrders)).toBe("active");

    expect((await c.http("DELETE", `/v1/leases/${onBilling.id}`, { token: onBilling.token })).status).toBe(
      202,
    );
    const allowed = await asOps("leases", "revoke", "--task", "OPS-1");
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stdout).toContain(onOrders.id);
    expect(await leaseState(onOrders)).toBe("ended");
    expect(await leaseState(otherTask)).toBe("active");
    const records = await c.auditRecords();
    expect(records.filter((rec) => rec.event === "task_teardown" && rec.task_id === "OPS-1")).toEqual([
      expect.objectContaining({ scope: "revoke", agent: OPS, lease_count: 1 }),
    ]);
  });

  it("the SDK's completeTask ends the agent's leases of the task and returns them", async () => {
    const client = createClient({ url: stack.sidecar.url, keyFile: await c.keyFile("a") });
    const request = {
      task: { id: "SDK/17 ?#%" },
      intent: { action: "read", tool: "psql" },
      ttl: 120,
      wait: 30,
    };
    const first = await client.checkout("orders-db", request);
    const second = await client.checkout("billing-db", request);
    expect(first.tokenType).toBe("DPoP");
    const ended = await client.completeTask("SDK/17 ?#%");
    expect(ended.map((l) => l.id).sort()).toEqual([first.lease.id, second.lease.id].sort());
    expect(ended.every((l) => l.state === "ended" && l.end_reason === "checkin")).toBe(true);
    // The client's handles know their leases ended: their own check-in resolves.
    expect(first.lease.state).toBe("ended");
    await first.checkin();
    await second.checkin();
    expect(await client.completeTask("SDK/17 ?#%")).toEqual([]);
    const err = await client.completeTask("bad\u0007id").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeaseholdClientError);
    expect((err as LeaseholdClientError).code).toBe("invalid_request");
    expect(await leaseState(otherTask)).toBe("active");
  });

  it("no password or token appears in the sidecar's logs or the audit file", async () => {
    const logs = stack.sidecar.output();
    const audit = await readFile(join(stack.dir, "state", "audit.jsonl"), "utf8");
    expect(c.secrets.length).toBeGreaterThan(10);
    for (const s of c.secrets) {
      expect(logs.includes(s), "a secret is in the logs").toBe(false);
      expect(audit.includes(s), "a secret is in the audit file").toBe(false);
    }
  });
});
