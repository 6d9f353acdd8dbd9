import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ErrorBody, StackClient } from "../support/e2e-client.js";
import { type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/** Runtime policy with human approval (issue 8), through the CLI and HTTP with two identities. */

const POLICY = `@id("read-orders")
permit (principal, action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"], resource == Resource::"orders-db")
when { context.intent == "read" && context.ttl <= 600 };

@id("writes-need-approval")
permit (principal, action == Action::"checkout", resource == Resource::"orders-db")
when { context.intent == "write" && context.approved };

@id("writers-use-their-lease")
permit (principal, action in [Action::"reveal", Action::"renew", Action::"tool_call"], resource == Resource::"orders-db")
when { context.intent == "write" };

@id("alice-operates-orders")
permit (principal == Agent::"spiffe://example.org/operator/alice", action in [Action::"approve", Action::"revoke", Action::"register"], resource == Resource::"orders-db");

@id("mallory-registers-staging")
permit (principal == Agent::"spiffe://example.org/operator/mallory", action == Action::"register", resource in ResourceGroup::"staging");

@id("at-most-two-leases")
forbid (principal, action == Action::"checkout", resource)
when { context.active_leases >= 2 };
`;

let stack: Stack;
let c: StackClient;
let admin: string;
const read = {
  resource: "orders-db",
  task: { id: "TICKET-7" },
  intent: { action: "read", tool: "psql" },
  ttl: 60,
};
const write = { ...read, intent: { action: "write", tool: "psql" } };

beforeAll(async () => {
  stack = await startStack({
    policy: POLICY,
    operators: ["alice", "mallory"],
    config: { approvals: { ttl: 15 }, limits: { checkoutsPerMinute: 8 } },
  });
  c = new StackClient(stack);
  admin = await c.adminToken();
  for (const n of [1, 2, 3]) await stack.createRole(`app_orders_${n}`, `initial-pass-${n}-123456789`);
  const reg = {
    name: "orders-db",
    adapter: "postgres",
    connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
    admin: { username: "leasehold_admin", password: stack.adminPassword },
    accounts: ["app_orders_1", "app_orders_2", "app_orders_3"],
  };
  await writeFile(join(stack.dir, "orders-db.json"), JSON.stringify(reg));
  const r = await stack.cli("resources", "register", "-f", join(stack.dir, "orders-db.json"));
  expect(r.code, r.stderr).toBe(0);
  await c.waitForAccounts("orders-db", "available");
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

describe("human approval", () => {
  it("a write needs approval: 202, an operator approves from the CLI, the agent's poll gets the lease", async () => {
    const pending = await c.http("POST", "/v1/checkout", { token: await c.assertion("a"), body: write });
    expect(pending.status).toBe(202);
    const approval = pending.json.approval as { id: string; status: string; expires_at: string };
    expect(approval.status).toBe("pending");
    expect(approval.id).toMatch(/^apr_/);

    const list = await stack.cli("approvals", "list");
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(approval.id);
    expect(list.stdout).toContain("spiffe://example.org/agent/a");

    const stranger = await c.http("GET", `/v1/approvals/${approval.id}`, { token: await c.assertion("b") });
    expect(stranger.status).toBe(404);
    const waiting = await c.http("GET", `/v1/approvals/${approval.id}`, { token: await c.assertion("a") });
    expect((waiting.json.approval as { status: string }).status).toBe("pending");

    const ok = await stack.cli(
      "approvals",
      "approve",
      approval.id,
      "--as",
      "alice@example.org",
      "--reason",
      "month end",
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain("approved by alice@example.org");
    const again = await stack.cli("approvals", "deny", approval.id);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("conflict");

    const done = await c.http("GET", `/v1/approvals/${approval.id}`, { token: await c.assertion("a") });
    expect(done.status).toBe(200);
    const got = done.json.approval as {
      status: string;
      lease: { id: string; approver: string };
      token: string;
    };
    expect(got.status).toBe("approved");
    expect(got.lease.approver).toBe("alice@example.org");
    c.secrets.push(got.token);
    const cred = await c.http("GET", `/v1/leases/${got.lease.id}/credential`, { token: got.token });
    expect(cred.status).toBe(200);
    c.secrets.push(cred.json.password as string);
    const second = await c.http("GET", `/v1/approvals/${approval.id}`, { token: await c.assertion("a") });
    expect((second.json.approval as { lease: { id: string } }).lease.id).toBe(got.lease.id);
    expect((await c.http("DELETE", `/v1/leases/${got.lease.id}`, { token: got.token })).status).toBe(202);

    const records = (await c.auditRecords()).filter((r) => r.lease_id === got.lease.id);
    expect(records.length).toBeGreaterThanOrEqual(3);
    for (const r of records.filter((x) => ["checkout", "reveal", "checkin"].includes(String(x.event)))) {
      expect(r.approver).toBe("alice@example.org");
    }
    const decided = (await c.auditRecords()).find(
      (r) => r.scope === "approved" && r.approver === "alice@example.org",
    );
    expect(decided).toBeDefined();
  });

  it("a denied request never becomes a lease", async () => {
    const pending = await c.http("POST", "/v1/checkout", { token: await c.assertion("a"), body: write });
    const id = (pending.json.approval as { id: string }).id;
    const r = await c.http("POST", `/v1/approvals/${id}/deny`, {
      token: admin,
      body: { reason: "not today", approver: "bob" },
    });
    expect(r.status).toBe(200);
    const poll = await c.http("GET", `/v1/approvals/${id}`, { token: await c.assertion("a") });
    const a = poll.json.approval as { status: string; lease?: unknown; reason: string };
    expect(a.status).toBe("denied");
    expect(a.lease).toBeUndefined();
  });

  it("an approval request expires; approving it afterwards is a conflict", { timeout: 90_000 }, async () => {
    const pending = await c.http("POST", "/v1/checkout", { token: await c.assertion("a"), body: write });
    const id = (pending.json.approval as { id: string }).id;
    // The sidecar's own clock runs the 15 s out (a frozen clock tests the store itself, in
    // test/approvals/approval-store.test.ts); here the agent's poll waits for the change.
    const poll = await waitFor("the approval to be reported expired", async () => {
      const r = await c.http("GET", `/v1/approvals/${id}`, { token: await c.assertion("a") });
      return (r.json.approval as { status: string }).status === "pending" ? undefined : r;
    });
    expect((poll.json.approval as { status: string }).status).toBe("expired");
    const late = await c.http("POST", `/v1/approvals/${id}/approve`, { token: admin, body: {} });
    expect(late.status).toBe(409);
  });
});

describe("operators with their own identity", () => {
  const ALICE = "spiffe://example.org/operator/alice";
  const MALLORY = "spiffe://example.org/operator/mallory";
  const as = async (who: string, ...args: string[]) =>
    stack.cli("--identity-key", await c.keyFile(who), ...args);

  it("policy decides who approves and revokes; the approval names the operator's identity", async () => {
    const pending = await c.http("POST", "/v1/checkout", { token: await c.assertion("a"), body: write });
    expect(pending.status).toBe(202);
    const id = (pending.json.approval as { id: string }).id;

    // An identity no policy lets approve anything: listing is refused (403, issue 16: no longer an
    // empty list), and so is approving.
    const hidden = await as("mallory", "approvals", "list");
    expect(hidden.code).toBe(1);
    expect(hidden.stderr).toContain("policy_denied");
    expect(hidden.stdout).not.toContain(id);
    const refused = await as("mallory", "approvals", "approve", id);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("policy_denied");
    // An agent's identity is no operator either (403, not 401: it is a valid identity).
    const agentTry = await c.http("POST", `/v1/approvals/${id}/approve`, {
      token: await c.assertion("b"),
      body: {},
    });
    expect(agentTry.status).toBe(403);
    expect((agentTry.json as unknown as ErrorBody).error.code).toBe("policy_denied");

    const listed = await as("alice", "approvals", "list");
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(id);
    const named = await as("alice", "approvals", "approve", id, "--as", "someone-else");
    expect(named.code).toBe(1);
    expect(named.stderr).toContain("--as");
    const spoof = await c.http("POST", `/v1/approvals/${id}/approve`, {
      token: await c.assertion("alice"),
      body: { approver: "someone-else" },
    });
    expect(spoof.status).toBe(400);
    expect((spoof.json as unknown as ErrorBody).error.message).toContain("approver");
    const ok = await as("alice", "approvals", "approve", id, "--reason", "month end");
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`approved by ${ALICE}`);

    const done = await c.http("GET", `/v1/approvals/${id}`, { token: await c.assertion("a") });
    const got = done.json.approval as { lease: { id: string; approver: string }; token: string };
    expect(got.lease.approver).toBe(ALICE);
    c.secrets.push(got.token);

    // Mallory may not revoke it; Alice may, and the token is refused on its next use.
    const noRevoke = await as("mallory", "leases", "revoke", got.lease.id);
    expect(noRevoke.code).toBe(1);
    expect(noRevoke.stderr).toContain("policy_denied");
    const seen = await as("mallory", "leases", "list", "--json");
    expect(seen.code).toBe(1);
    expect(seen.stderr).toContain("policy_denied");
    expect(seen.stdout).not.toContain(got.lease.id);
    expect((await c.http("GET", `/v1/leases/${got.lease.id}`, { token: got.token })).status).toBe(200);
    const revoked = await as("alice", "leases", "revoke", got.lease.id, "--reason", "done");
    expect(revoked.code, revoked.stderr).toBe(0);
    const after = await c.http("GET", `/v1/leases/${got.lease.id}`, { token: got.token });
    expect(after.status).toBe(401);
    expect((after.json as unknown as ErrorBody).error.code).toBe("lease_revoked");

    const records = await c.auditRecords();
    for (const r of records.filter((x) => x.lease_id === got.lease.id && x.event === "checkout"))
      expect(r.approver).toBe(ALICE);
    const decisions = records.filter((r) => r.event === "decision" && r.scope === "approve");
    expect(decisions.find((r) => r.agent === ALICE && r.decision === "allow")?.policies).toEqual([
      "alice-operates-orders",
    ]);
    expect(decisions.some((r) => r.agent === MALLORY && r.decision === "deny")).toBe(true);
    expect(records.some((r) => r.scope === "approved" && r.approver === ALICE)).toBe(true);
    await c.waitForAccounts("orders-db", "available");
  });

  it("a DBA identity registers only what policy lets it, judged by the resource's groups before and after", async () => {
    const file = join(stack.dir, "orders-db.json");
    const denied = await as("mallory", "resources", "register", "-f", file, "--dry-run");
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain("policy_denied");
    // Mallory may register staging resources, but cannot pull orders-db into staging.
    const reg = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
    const moved = join(stack.dir, "orders-db-staging.json");
    await writeFile(moved, JSON.stringify({ ...reg, groups: ["staging"] }));
    const move = await as("mallory", "resources", "register", "-f", moved, "--dry-run");
    expect(move.code).toBe(1);
    expect(move.stderr).toContain("policy_denied");
    // A staging resource that claims orders-db's account: 409, without naming a resource she
    // may not see.
    const claim = join(stack.dir, "scratch-claim.json");
    await writeFile(claim, JSON.stringify({ ...reg, name: "scratch-db", groups: ["staging"] }));
    const claimed = await as("mallory", "resources", "register", "-f", claim, "--dry-run");
    expect(claimed.code).toBe(1);
    expect(claimed.stderr).toContain("conflict");
    expect(claimed.stderr).toContain("already managed by another resource");
    expect(claimed.stderr).not.toContain("orders-db");
    // With an account of its own, the staging resource passes.
    await stack.createRole("app_scratch_1", "scratch-pass-1234567");
    const fresh = join(stack.dir, "scratch-db.json");
    await writeFile(
      fresh,
      JSON.stringify({ ...reg, name: "scratch-db", groups: ["staging"], accounts: ["app_scratch_1"] }),
    );
    const staging = await as("mallory", "resources", "register", "-f", fresh, "--dry-run");
    expect(staging.code, staging.stderr).toBe(0);
    // A dry run registers nothing: no staging resource exists, so Mallory may register none yet
    // and listing is refused (403, issue 16) rather than answered with an empty list.
    const mallorys = await as("mallory", "resources", "list", "--json");
    expect(mallorys.code).toBe(1);
    expect(mallorys.stderr).toContain("policy_denied");
    expect(mallorys.stdout).not.toContain("orders-db");
    const dry = await as("alice", "resources", "register", "-f", file, "--dry-run");
    expect(dry.code, dry.stderr).toBe(0);
    const shown = await as("alice", "resources", "show", "orders-db");
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain("app_orders_1");
  });
});

describe("limits in policy and in the sidecar", () => {
  it("no agent holds more than two leases (context.active_leases)", async () => {
    const held = [await c.checkoutAndReveal("b", read), await c.checkoutAndReveal("b", read)];
    const third = await c.http("POST", "/v1/checkout", { token: await c.assertion("b"), body: read });
    expect(third.status).toBe(403);
    expect((third.json as unknown as ErrorBody).error.code).toBe("policy_denied");
    for (const h of held) await c.http("DELETE", `/v1/leases/${h.id}`, { token: h.token });
    await c.waitForAccounts("orders-db", "available");
  });

  it("a TTL above the policy's cap is denied", async () => {
    const r = await c.http("POST", "/v1/checkout", {
      token: await c.assertion("b"),
      body: { ...read, ttl: 900 },
    });
    expect(r.status).toBe(403);
  });

  it("too many checkouts a minute: 429 rate_limited with retry_after", async () => {
    let last = { status: 0, json: {} as Record<string, unknown> };
    for (let i = 0; i < 10 && last.status !== 429; i++) {
      last = await c.http("POST", "/v1/checkout", {
        token: await c.assertion("b"),
        body: { ...read, ttl: 900 },
      });
    }
    expect(last.status).toBe(429);
    const e = (last.json as unknown as ErrorBody).error;
    expect(e.code).toBe("rate_limited");
    expect(e.retry_after).toBeGreaterThan(0);
  });
});

describe("policy files", () => {
  it("policy check and validate work offline from the CLI", async () => {
    const file = join(stack.dir, "policy.cedar");
    const checkCheckout = (context: string) =>
      stack.cli(
        "policy",
        "check",
        "--file",
        file,
        "--principal",
        "spiffe://example.org/agent/x",
        "--action",
        "checkout",
        "--resource",
        "orders-db",
        "--context",
        context,
      );
    const allow = await checkCheckout('{"intent":"read","ttl":300}');
    expect(allow.code, allow.stderr).toBe(0);
    expect(allow.stdout).toMatch(/^ALLOW by read-orders/);
    const approval = await checkCheckout('{"intent":"write"}');
    expect(approval.stdout).toMatch(/^APPROVAL_REQUIRED by writes-need-approval/);
    const deny = await checkCheckout('{"intent":"drop"}');
    expect(deny.code).toBe(2);
    expect(deny.stdout).toMatch(/^DENY/);
    const badCtx = await stack.cli(
      "policy",
      "check",
      "--file",
      file,
      "--principal",
      "p",
      "--action",
      "checkout",
      "--resource",
      "r",
      "--context",
      "{nope",
    );
    expect(badCtx.code).toBe(1);
    expect(badCtx.stderr).toContain("--context");
    const valid = await stack.cli("policy", "validate", file);
    expect(valid.code).toBe(0);
    await writeFile(join(stack.dir, "bad.cedar"), 'permit (principal, action == Action::"fly", resource);');
    const invalid = await stack.cli("policy", "validate", join(stack.dir, "bad.cedar"));
    expect(invalid.code).toBe(1);
    expect(invalid.stdout).toContain("error");
  });

  it("SIGHUP reloads the policy; a file that fails validation leaves the old policy in force", async () => {
    /** Sends SIGHUP and waits for the sidecar to log the reload's outcome, whichever it is. */
    const reload = async () => {
      const seen = () => stack.sidecar.output().match(/"msg":"policy reload(ed|\b)/g)?.length ?? 0;
      const before = seen();
      stack.sidecar.child.kill("SIGHUP");
      await waitFor("the sidecar to log the policy reload's outcome", () => seen() > before);
    };
    const file = join(stack.dir, "policy.cedar");
    await writeFile(file, 'permit (principal, action == Action::"fly", resource);');
    await reload();
    const still = await c.checkoutAndReveal("a", read);
    await c.http("DELETE", `/v1/leases/${still.id}`, { token: still.token });
    expect(stack.sidecar.output()).toContain("policy reload failed");
    await writeFile(file, POLICY.replace('context.intent == "read" &&', 'context.intent == "never" &&'));
    await reload();
    const denied = await c.http("POST", "/v1/checkout", { token: await c.assertion("a"), body: read });
    expect(denied.status).toBe(403);
  });

  it("no secret reached the logs or the audit file", async () => {
    const logs = stack.sidecar.output();
    const audit = JSON.stringify(await c.auditRecords());
    for (const s of c.secrets) {
      expect(logs.includes(s)).toBe(false);
      expect(audit.includes(s)).toBe(false);
    }
  });
});
