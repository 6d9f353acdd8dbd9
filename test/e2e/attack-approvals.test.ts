import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDpopKey, type DpopKey } from "../../sidecar/client/dpop-key.js";
import { hasRefusedChars } from "../../sidecar/util/text.js";
import { type ErrorBody, type HttpResult, StackClient } from "../support/e2e-client.js";
import { REDIS_URL } from "../support/redis.js";
import { approvedWritesPolicy, type Stack, startStack } from "../support/stack.js";

/*
 * Issue 16, attacks 4-7, through the built CLI and HTTP against Redis, PostgreSQL and Vault:
 * self-approval (4), a DPoP binding dropped after redemption (5), approval spam hiding a real
 * request (6), terminal injection through task.id (7). Each test asserts the refusal, its audit
 * record, and that nothing changed.
 */

const ALICE = "spiffe://example.org/operator/alice";
const BOB = "spiffe://example.org/operator/bob";
const AGENT_A = "spiffe://example.org/agent/a";
const AGENT_B = "spiffe://example.org/agent/b";

const POLICY = `@id("read-orders")
permit (principal, action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"], resource == Resource::"orders-db")
when { context.intent == "read" };

${approvedWritesPolicy("orders-db")}
@id("operators-approve-orders")
permit (principal, action in [Action::"approve", Action::"revoke"], resource == Resource::"orders-db")
when { principal == Agent::"${ALICE}" || principal == Agent::"${BOB}" };
`;

let stack: Stack;
let c: StackClient;
let admin: string;
let redis: Redis;
const write = (task = "CHG-16") => ({
  resource: "orders-db",
  task: { id: task },
  intent: { action: "write", tool: "psql" },
  ttl: 60,
});

beforeAll(async () => {
  stack = await startStack({
    policy: POLICY,
    operators: ["alice", "bob"],
    config: { approvals: { ttl: 600 }, limits: { checkoutsPerMinute: 100 } },
  });
  c = new StackClient(stack);
  admin = await c.adminToken();
  redis = new Redis(REDIS_URL);
  for (const n of [1, 2, 3]) await stack.createRole(`app_orders_${n}`, `initial-pass-${n}-123456789`);
  await c.registerPostgres("orders-db", { accounts: ["app_orders_1", "app_orders_2", "app_orders_3"] });
}, 120_000);

afterAll(async () => {
  redis?.disconnect();
  await stack?.close();
});

function errorOf(r: HttpResult, status: number, code: string): string {
  expect(r.status, JSON.stringify(r.json)).toBe(status);
  const e = (r.json as unknown as ErrorBody).error;
  expect(e.code).toBe(code);
  return e.message;
}

async function requestApproval(agent: string, body = write()): Promise<string> {
  const r = await c.http("POST", "/v1/checkout", { token: await c.assertion(agent), body });
  expect(r.status, JSON.stringify(r.json)).toBe(202);
  return (r.json.approval as { id: string }).id;
}

async function activeLeasesOf(agent: string): Promise<Array<{ id: string }>> {
  const r = await c.http("GET", `/v1/leases?agent=${encodeURIComponent(agent)}`, { token: admin });
  expect(r.status).toBe(200);
  return r.json.leases as Array<{ id: string }>;
}

async function approvalStatus(id: string): Promise<string> {
  const all: Array<{ id: string; status: string }> = [];
  let cursor: string | undefined;
  do {
    const r = await c.http("GET", `/v1/approvals?limit=200${cursor ? `&cursor=${cursor}` : ""}`, {
      token: admin,
    });
    all.push(...(r.json.approvals as Array<{ id: string; status: string }>));
    cursor = r.json.next as string | undefined;
  } while (cursor);
  return all.find((a) => a.id === id)?.status ?? "missing";
}

const as = async (who: string, ...args: string[]) =>
  stack.cli("--identity-key", await c.keyFile(who), ...args);

describe("attack 4: self-approval", () => {
  it("an operator cannot approve its own request, with its identity or the admin token; another operator can", async () => {
    const id = await requestApproval("alice");

    const self = await as("alice", "approvals", "approve", id);
    expect(self.code).toBe(1);
    expect(self.stderr).toContain("policy_denied");
    expect(self.stderr).toContain("four eyes");
    const viaHttp = await c.http("POST", `/v1/approvals/${id}/approve`, {
      token: await c.assertion("alice"),
      body: {},
    });
    errorOf(viaHttp, 403, "policy_denied");
    // The admin token names its approver: naming the requester is refused too.
    const viaAdmin = await stack.cli("approvals", "approve", id, "--as", ALICE.toUpperCase());
    expect(viaAdmin.code).toBe(1);
    expect(viaAdmin.stderr).toContain("policy_denied");

    const refusals = (await c.auditRecords()).filter(
      (r) => r.approval_id === id && r.event === "decision" && r.scope === "approve" && r.decision === "deny",
    );
    expect(refusals.length).toBeGreaterThanOrEqual(3);
    expect(refusals.map((r) => r.approver)).toContain(ALICE);
    for (const r of refusals) expect(String(r.reason)).toContain("four eyes");

    // Nothing changed: still pending, no lease, no token.
    expect(await approvalStatus(id)).toBe("pending");
    const poll = await c.http("GET", `/v1/approvals/${id}`, { token: await c.assertion("alice") });
    expect(poll.json.approval).toMatchObject({ status: "pending" });
    expect((poll.json.approval as { token?: string }).token).toBeUndefined();
    expect(await activeLeasesOf(ALICE)).toHaveLength(0);

    // Four eyes: bob approves, and the lease goes to alice, its holder only.
    const ok = await as("bob", "approvals", "approve", id, "--reason", "change window");
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`approved by ${BOB}`);
    const done = await c.http("GET", `/v1/approvals/${id}`, { token: await c.assertion("alice") });
    const got = done.json.approval as {
      lease: { id: string; account: string; approver: string };
      token: string;
    };
    expect(got.lease.approver).toBe(BOB);
    c.secrets.push(got.token);
    const cred = await c.http("GET", `/v1/leases/${got.lease.id}/credential`, { token: got.token });
    expect(cred.status).toBe(200);
    const password = cred.json.password as string;
    c.secrets.push(password);
    expect(await stack.canLogin(got.lease.account, password)).toBe(true);
    const stranger = await c.http("GET", `/v1/leases/${got.lease.id}/credential`, {
      token: await c.assertion("b"),
    });
    expect(stranger.status).toBe(401);
    expect((await c.http("DELETE", `/v1/leases/${got.lease.id}`, { token: got.token })).status).toBe(202);
    await c.waitForAccounts("orders-db", "available");
    expect(await stack.canLogin(got.lease.account, password)).toBe(false);
  });
});

describe("attack 5: a DPoP binding dropped after redemption", () => {
  let key: DpopKey;
  const poll = async (id: string, proofKey?: DpopKey) => {
    const headers: Record<string, string> = {};
    if (proofKey) headers.dpop = await proofKey.proof("GET", `${stack.sidecar.url}/v1/approvals/${id}`);
    return c.http("GET", `/v1/approvals/${id}`, { token: await c.assertion("a"), headers });
  };

  it("every poll needs a proof by the checkout's key; the token is minted once, bound to it", async () => {
    key = await createDpopKey();
    const proof = await key.proof("POST", `${stack.sidecar.url}/v1/checkout`);
    const co = await c.http("POST", "/v1/checkout", {
      token: await c.assertion("a"),
      body: write("CHG-DPOP"),
      headers: { dpop: proof },
    });
    expect(co.status).toBe(202);
    const id = (co.json.approval as { id: string }).id;

    expect(errorOf(await poll(id), 401, "unauthenticated")).toContain("DPoP proof missing");
    const thief = await createDpopKey();
    expect(errorOf(await poll(id, thief), 401, "unauthenticated")).toContain("does not match");

    const ok = await c.http("POST", `/v1/approvals/${id}/approve`, {
      token: admin,
      body: { approver: "ops" },
    });
    expect(ok.status).toBe(200);
    // Approved: an identity JWT alone (the attack) still gets nothing.
    expect(errorOf(await poll(id), 401, "unauthenticated")).toContain("DPoP proof missing");

    const first = await poll(id, key);
    expect(first.status).toBe(200);
    const got = first.json.approval as { lease: { id: string }; token: string; token_type: string };
    expect(got.token_type).toBe("DPoP");
    c.secrets.push(got.token);
    const leaseId = got.lease.id;

    // The attack: poll the redeemed approval again without the key, then even with it.
    expect(errorOf(await poll(id), 401, "unauthenticated")).toContain("DPoP proof missing");
    const again = await poll(id, key);
    expect(again.status).toBe(200);
    const later = again.json.approval as { lease?: { id: string }; token?: string; token_type?: string };
    expect(later.lease?.id).toBe(leaseId);
    expect(later.token).toBeUndefined();
    expect(later.token_type).toBeUndefined();

    const denials = (await c.auditRecords()).filter(
      (r) => r.approval_id === id && r.event === "decision" && r.scope === "dpop" && r.decision === "deny",
    );
    expect(denials.length).toBeGreaterThanOrEqual(4);
    expect(denials.every((r) => r.agent === AGENT_A)).toBe(true);

    // Nothing changed: one lease, its token refused as a Bearer token, usable with the key only.
    expect((await activeLeasesOf(AGENT_A)).map((l) => l.id)).toEqual([leaseId]);
    const bearer = await c.http("GET", `/v1/leases/${leaseId}/credential`, { token: got.token });
    expect(bearer.status).toBe(401);
    const url = `${stack.sidecar.url}/v1/leases/${leaseId}`;
    const bound = await c.http("DELETE", `/v1/leases/${leaseId}`, {
      headers: { authorization: `DPoP ${got.token}`, dpop: await key.proof("DELETE", url, got.token) },
    });
    expect(bound.status).toBe(202);
    await c.waitForAccounts("orders-db", "available");
  });
});

describe("attack 6: approval spam", () => {
  it("a cap per agent refuses the flood (429, audited); the real request is approved by id; lists page with a total", async () => {
    const real = await requestApproval("a", write("CHG-REAL"));
    const spam: string[] = [];
    let refused: HttpResult | undefined;
    for (let i = 0; i < 12 && !refused; i++) {
      const r = await c.http("POST", "/v1/checkout", {
        token: await c.assertion("b"),
        body: write(`SPAM-${i}`),
      });
      if (r.status === 202) spam.push((r.json.approval as { id: string }).id);
      else refused = r;
    }
    expect(spam).toHaveLength(5);
    if (!refused) throw new Error("the flood was never refused");
    errorOf(refused, 429, "rate_limited");
    expect((refused.json as unknown as ErrorBody).error.retry_after).toBeGreaterThan(0);
    const denial = (await c.auditRecords()).find(
      (r) =>
        r.event === "decision" &&
        r.scope === "approval_requested" &&
        r.decision === "deny" &&
        r.agent === AGENT_B,
    );
    expect(String(denial?.reason)).toContain("pending approvals");

    // Lists are paginated with a total; every approval is on exactly one page.
    const seen: string[] = [];
    let cursor: string | undefined;
    let total = -1;
    do {
      const page = await c.http(
        "GET",
        `/v1/approvals?status=pending&limit=2${cursor ? `&cursor=${cursor}` : ""}`,
        {
          token: admin,
        },
      );
      expect(page.status).toBe(200);
      const approvals = page.json.approvals as Array<{ id: string }>;
      expect(approvals.length).toBeLessThanOrEqual(2);
      seen.push(...approvals.map((a) => a.id));
      total = page.json.total as number;
      cursor = page.json.next as string | undefined;
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBe(total);
    expect(seen).toEqual(expect.arrayContaining([real, ...spam]));
    const cli = await stack.cli("approvals", "list", "--limit", "2");
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain(`2 of ${total}`);
    expect(cli.stdout).toContain("more: --cursor");

    // Approving goes by id: the oldest request, past the first page, is decided.
    const ok = await as("alice", "approvals", "approve", real);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await approvalStatus(real)).toBe("approved");

    // Nothing else changed: no lease for the flooder, its five requests still pending.
    expect(await activeLeasesOf(AGENT_B)).toHaveLength(0);
    for (const id of spam) expect(await approvalStatus(id)).toBe("pending");
    for (const id of spam)
      await c.http("POST", `/v1/approvals/${id}/deny`, { token: admin, body: { approver: "ops" } });
  });
});

describe("attack 7: terminal injection through task.id", () => {
  it("a task.id with ESC, NUL or U+202E is refused (400 naming task.id); nothing is stored", async () => {
    const before = (await c.auditRecords()).length;
    for (const id of ["T\u001b[1A\u001b[2K\u001b]52;c;ZXZpbA==\u0007", "T\u0000", "T\u202etxt.exe"]) {
      const r = await c.http("POST", "/v1/checkout", { token: await c.assertion("a"), body: write(id) });
      expect(errorOf(r, 400, "invalid_request")).toContain("task.id");
      expect((r.json as unknown as ErrorBody).error.message).not.toContain("ZXZpbA");
    }
    const records = (await c.auditRecords()).slice(before);
    expect(records.some((r) => typeof r.task_id === "string" && hasRefusedChars(r.task_id))).toBe(false);
    expect(records.some((r) => r.event === "checkout" || r.scope === "approval_requested")).toBe(false);
  });

  it("approvals list and leases list print stored control characters escaped (older data)", async () => {
    const evil = "T-7\u001b[1A\u001b[2K\u001b]52;c;ZXZpbA==\u0007\u202e";
    // An approval as an older sidecar stored it (status and JSON only), with a hostile task.id.
    const now = Date.now();
    const oldId = "apr_olderdata00000000";
    await redis.hset(`${stack.prefix}approval:${oldId}`, {
      status: "pending",
      json: JSON.stringify({
        id: oldId,
        status: "pending",
        agent: `${AGENT_A}\u001b[31m`,
        resource: "orders-db",
        task: { id: evil },
        intent: { action: "write\u009b2J" },
        ttl: 60,
        policies: [],
        requested_at: new Date(now).toISOString(),
        expires_at: new Date(now + 600_000).toISOString(),
      }),
    });
    await redis.zadd(`${stack.prefix}approvals`, now, oldId);
    const listed = await stack.cli("approvals", "list");
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(oldId);
    expect(listed.stdout).toContain("T-7\\x1b[1A\\x1b[2K\\x1b]52;c;ZXZpbA==\\x07\\u202e");
    expect(listed.stdout.split("\n").some(hasRefusedChars)).toBe(false);
    const asJson = await stack.cli("--json", "approvals", "list");
    expect(asJson.stdout.split("\n").some(hasRefusedChars)).toBe(false);
    expect(JSON.stringify(JSON.parse(asJson.stdout))).toContain(JSON.stringify(evil).slice(1, -1));

    // A live lease whose stored task.id an older sidecar let through.
    const lease = await c.checkoutAndReveal("a", { ...write("CHG-OLD"), intent: { action: "read" } });
    const key = `${stack.prefix}{r:orders-db}:lease:${lease.id}`;
    const stored = JSON.parse((await redis.hget(key, "json")) ?? "{}") as Record<string, unknown>;
    await redis.hset(key, "json", JSON.stringify({ ...stored, task: { id: evil } }));
    const leases = await stack.cli("leases", "list");
    expect(leases.code, leases.stderr).toBe(0);
    expect(leases.stdout).toContain(lease.id);
    expect(leases.stdout.split("\n").some(hasRefusedChars)).toBe(false);
    expect(leases.stdout).toContain("\\x1b]52;c;");
    await c.http("DELETE", `/v1/leases/${lease.id}`, { token: lease.token });
    await redis.del(`${stack.prefix}approval:${oldId}`);
    await redis.zrem(`${stack.prefix}approvals`, oldId);
    await c.waitForAccounts("orders-db", "available");
  });
});

describe("afterwards", () => {
  it("no secret reached the logs or the audit file", async () => {
    const logs = stack.sidecar.output();
    const audit = JSON.stringify(await c.auditRecords());
    for (const s of c.secrets) {
      expect(logs.includes(s)).toBe(false);
      expect(audit.includes(s)).toBe(false);
    }
  });
});
