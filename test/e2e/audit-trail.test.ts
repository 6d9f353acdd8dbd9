import { createHash } from "node:crypto";
import { copyFile, link, mkdtemp, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import {
  type AuditRecord,
  auditFileSet,
  ChainChecker,
  loadAuditKey,
  readAuditStream,
} from "../../sidecar/audit/index.js";
import { mintIdentityAssertion } from "../../sidecar/identity/index.js";
import { expectValidAuditRecords, readRecords } from "../audit/record-check.js";
import { type ErrorBody, StackClient } from "../support/e2e-client.js";
import { REDIS_URL } from "../support/redis.js";
import { type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/**
 * Issue 9: a trail an incident responder can use. Two agents, one approval (and one refusal),
 * tool calls, a check-in, an expiry, a revocation, a failed rotation and a quarantine, a policy
 * reload, an audit outage; then every question is answered by a field, the chain verifies (and
 * breaks on tampered copies), and no secret seen anywhere is in the files or the Redis stream.
 */

const POLICY = `@id("read-orders")
permit (
  principal,
  action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"],
  resource == Resource::"orders-db"
)
when { context.intent == "read" && context.ttl <= 600 };

@id("write-orders-with-approval")
permit (principal, action == Action::"checkout", resource == Resource::"orders-db")
when { context.intent == "write" && context.approved };

@id("use-write-lease")
permit (
  principal,
  action in [Action::"reveal", Action::"renew", Action::"tool_call"],
  resource == Resource::"orders-db"
)
when { context.intent == "write" };
`;

const A = "spiffe://example.org/agent/a";
const B = "spiffe://example.org/agent/b";

let stack: Stack;
let c: StackClient;
let admin: string;
let redis: Redis;
let auditFile: string;

const ids = { leaseA: "", leaseB: "", leaseExpired: "", approvalB: "", approvalDenied: "" };
const digest = (s: string) => createHash("sha256").update(s).digest("hex");

/** An identity JWT for agent a or b, minted in-process exactly as `leasehold agent assert` does. */
async function assertion(agent: "a" | "b"): Promise<string> {
  const jwt = await mintIdentityAssertion({
    keyFile: await c.keyFile(agent),
    audience: "leasehold",
    ttlSeconds: 60,
  });
  c.secrets.push(jwt);
  return jwt;
}

async function checkoutAndReveal(agent: "a" | "b", body: Record<string, unknown>) {
  const co = await c.http("POST", "/v1/checkout", { token: await assertion(agent), body });
  expect(co.status, JSON.stringify(co.json)).toBe(201);
  const token = co.json.token as string;
  const id = (co.json.lease as { id: string }).id;
  c.secrets.push(token);
  const cred = await c.http("GET", `/v1/leases/${id}/credential`, { token });
  expect(cred.status).toBe(200);
  c.secrets.push(cred.json.password as string);
  return { id, token };
}

async function allRecords(): Promise<AuditRecord[]> {
  return (await readRecords(...(await auditFileSet(auditFile)))) as unknown as AuditRecord[];
}

const waitForRecord = (what: string, match: (r: AuditRecord) => boolean) =>
  waitFor(what, async () => (await allRecords()).find(match));

beforeAll(async () => {
  stack = await startStack({
    policy: POLICY,
    config: {
      // Small files, so the scenario spans several rotated files; the stream mirror.
      audit: { file: "./state/audit.jsonl", maxBytes: 8192, stream: { enabled: true, maxLen: 10_000 } },
      rotation: { maxFailures: 1, backoff: 0.3, maxBackoff: 1, reconcileInterval: 1 },
    },
  });
  c = new StackClient(stack);
  admin = await c.adminToken();
  redis = new Redis(REDIS_URL);
  auditFile = join(stack.dir, "state", "audit.jsonl");
  c.secrets.push(stack.adminPassword, stack.vault.token);
  for (const [role, pw] of [
    ["app_orders_1", "orders-initial-pass-1"],
    ["app_orders_2", "orders-initial-pass-2"],
    ["app_scratch_1", "scratch-initial-pass-1"],
  ] as const) {
    await stack.createRole(role, pw);
    c.secrets.push(pw);
  }
}, 120_000);

afterAll(async () => {
  redis?.disconnect();
  await stack?.close();
});

describe("the audit trail of a whole scenario", () => {
  it("restarts with an HMAC key (`leasehold audit keygen`), so every record carries an hmac", async () => {
    const keyFile = join(stack.dir, "audit.key");
    const r = await stack.cli("audit", "keygen", "--out", keyFile);
    expect(r.code, r.stderr).toBe(0);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    c.secrets.push((await readFile(keyFile, "utf8")).trim());
    await stack.sidecar.stop();
    const config = parseYaml(await readFile(stack.configFile, "utf8")) as { audit: Record<string, unknown> };
    config.audit.hmacKeyFile = "./audit.key";
    await writeFile(stack.configFile, stringifyYaml(config));
    // Whatever the first start wrote had no hmac: the trail of this scenario starts here.
    for (const f of await auditFileSet(auditFile)) await rm(f);
    await redis.del(`${stack.prefix}audit`);
    await stack.restart();
  });

  it("registers two resources (registration and import rotations are audited)", async () => {
    for (const reg of [
      { name: "orders-db", accounts: ["app_orders_1", "app_orders_2"] },
      { name: "scratch-db", accounts: ["app_scratch_1"] },
    ]) {
      const file = join(stack.dir, `${reg.name}.json`);
      await writeFile(
        file,
        JSON.stringify({
          ...reg,
          adapter: "postgres",
          connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
          rotateWith: "admin",
          admin: { username: "leasehold_admin", password: stack.adminPassword },
          lease: { defaultTtl: 60, maxTtl: 600 },
        }),
      );
      const r = await stack.cli("resources", "register", "-f", file);
      expect(r.code, r.stderr).toBe(0);
      await c.waitForAccounts(reg.name, "available");
    }
  });

  it("agent A: checkout, reveal, renew, two tool calls, check-in", async () => {
    const { id, token } = await checkoutAndReveal("a", {
      resource: "orders-db",
      task: { id: "INC-101", description: "monthly revenue report" },
      intent: { action: "read", tool: "psql" },
      ttl: 300,
    });
    ids.leaseA = id;
    const renew = await c.http("POST", `/v1/leases/${id}/renew`, { token, body: { ttl: 300 } });
    expect(renew.status).toBe(200);
    for (const call of [
      { tool: "psql", action: "read", target: "orders", digest: digest("select sum(total) from orders") },
      { tool: "psql", action: "read", target: "customers" },
    ]) {
      expect((await c.http("POST", `/v1/leases/${id}/tool-calls`, { token, body: call })).status).toBe(202);
    }
    expect((await c.http("DELETE", `/v1/leases/${id}`, { token })).status).toBe(202);
  });

  it("agent B: a write needs approval; alice approves with the CLI; B polls with its identity JWT", async () => {
    const body = {
      resource: "orders-db",
      task: { id: "CHG-7", description: "fix order status" },
      intent: { action: "write", tool: "migrate" },
      ttl: 300,
    };
    const pending = await c.http("POST", "/v1/checkout", { token: await assertion("b"), body });
    expect(pending.status, JSON.stringify(pending.json)).toBe(202);
    const approvalId = (pending.json.approval as { id: string }).id;
    ids.approvalB = approvalId;
    const before = await c.http("GET", `/v1/approvals/${approvalId}`, { token: await assertion("b") });
    expect((before.json.approval as { status: string }).status).toBe("pending");

    const ok = await stack.cli("approvals", "approve", approvalId, "--as", "alice");
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain("approved by alice");

    const polled = await c.http("GET", `/v1/approvals/${approvalId}`, { token: await assertion("b") });
    expect(polled.status, JSON.stringify(polled.json)).toBe(200);
    const approval = polled.json.approval as {
      status: string;
      lease: { id: string; agent: string; approver?: string };
      token: string;
    };
    expect(approval.status).toBe("approved");
    expect(approval.lease.agent).toBe(B);
    ids.leaseB = approval.lease.id;
    const token = approval.token;
    c.secrets.push(token);

    const cred = await c.http("GET", `/v1/leases/${ids.leaseB}/credential`, { token });
    expect(cred.status).toBe(200);
    c.secrets.push(cred.json.password as string);
    const call = {
      tool: "psql",
      action: "write",
      target: "orders.status",
      digest: digest("update orders set status='x'"),
    };
    expect((await c.http("POST", `/v1/leases/${ids.leaseB}/tool-calls`, { token, body: call })).status).toBe(
      202,
    );

    const revoke = await stack.cli("leases", "revoke", ids.leaseB, "--reason", "incident drill");
    expect(revoke.code, revoke.stderr).toBe(0);
    const after = await c.http("GET", `/v1/leases/${ids.leaseB}/credential`, { token });
    expect((after.json as unknown as ErrorBody).error.code).toBe("lease_revoked");
  });

  it("a second approval is denied by bob; a request no policy allows is denied", async () => {
    const pending = await c.http("POST", "/v1/checkout", {
      token: await assertion("a"),
      body: { resource: "orders-db", task: { id: "CHG-8" }, intent: { action: "write", tool: "psql" } },
    });
    expect(pending.status).toBe(202);
    ids.approvalDenied = (pending.json.approval as { id: string }).id;
    const no = await stack.cli(
      "approvals",
      "deny",
      ids.approvalDenied,
      "--as",
      "bob",
      "--reason",
      "not during the freeze",
    );
    expect(no.code, no.stderr).toBe(0);
    const polled = await c.http("GET", `/v1/approvals/${ids.approvalDenied}`, {
      token: await assertion("a"),
    });
    expect((polled.json.approval as { status: string }).status).toBe("denied");

    const denied = await c.http("POST", "/v1/checkout", {
      token: await assertion("b"),
      body: { resource: "orders-db", task: { id: "CHG-9" }, intent: { action: "delete", tool: "psql" } },
    });
    expect(denied.status).toBe(403);
  });

  it("a lease expires and is ended by the reaper", async () => {
    const { id } = await checkoutAndReveal("a", {
      resource: "orders-db",
      task: { id: "INC-102" },
      intent: { action: "read", tool: "psql" },
      ttl: 1,
    });
    ids.leaseExpired = id;
    await waitForRecord("the expiry record", (r) => r.event === "expiry" && r.lease_id === id);
    await c.waitForAccounts("orders-db", "available");
  });

  it("a rotation fails on the target and the account is quarantined", async () => {
    await stack.asSuperuser((su) => su.query('DROP ROLE "app_scratch_1"'));
    const r = await stack.cli("resources", "rotate", "scratch-db");
    expect(r.code).toBe(1);
    await waitForRecord(
      "the quarantine record",
      (x) => x.event === "quarantine" && x.resource === "scratch-db",
    );
  });

  it("a policy reload (SIGHUP) is audited with the policies now in force", async () => {
    stack.sidecar.child.kill("SIGHUP");
    const rec = await waitForRecord("the policy reload record", (r) => r.event === "policy_reload");
    expect(rec.policies).toEqual(
      expect.arrayContaining(["read-orders", "write-orders-with-approval", "use-write-lease"]),
    );
  });

  it("fails closed while the audit file cannot be written: /readyz and checkout say 503; then recovers", async () => {
    await c.waitForAccounts("orders-db", "available");
    // Swap the path atomically (no moment without it, which would start a new file): a hard link
    // keeps the file, a symlink to a folder takes its place; later the file comes back over it.
    await link(auditFile, `${auditFile}.aside`);
    await symlink(await mkdtemp(join(stack.dir, "not-a-file-")), `${auditFile}.link`);
    await rename(`${auditFile}.link`, auditFile);
    try {
      const ready = await waitFor("readyz to report the audit log", async () => {
        const r = await c.http("GET", "/readyz");
        return r.status === 503 ? r : undefined;
      });
      expect(ready.json).toMatchObject({ status: "unavailable", checks: { audit: false } });
      const refused = await c.http("POST", "/v1/checkout", {
        token: await assertion("a"),
        body: { resource: "orders-db", task: { id: "INC-103" }, intent: { action: "read", tool: "psql" } },
      });
      expect(refused.status).toBe(503);
      expect((refused.json as unknown as ErrorBody).error.code).toBe("upstream_unavailable");
      const leases = await c.http("GET", "/v1/leases", { token: admin });
      expect((leases.json.leases as unknown[]).length).toBe(0);
    } finally {
      await rename(`${auditFile}.aside`, auditFile);
    }
    await waitFor("readyz to recover", async () =>
      (await c.http("GET", "/readyz")).status === 200 ? true : undefined,
    );
    const rec = await waitForRecord(
      "the recovery record",
      (r) => r.event === "admin" && r.scope === "audit_recovered",
    );
    expect(rec.reason).toContain("could not be written");
  });

  it("GET /v1/audit answers operators only, filtered, newest first, with paging", async () => {
    expect((await c.http("GET", "/v1/audit")).status).toBe(401);
    expect((await c.http("GET", "/v1/audit", { token: await assertion("a") })).status).toBe(401);
    const q = `/v1/audit?agent=${encodeURIComponent(B)}&resource=orders-db&since=1h&limit=2`;
    const first = await c.http("GET", q, { token: admin });
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    const page1 = first.json as unknown as { records: AuditRecord[]; next_cursor?: string };
    expect(page1.records).toHaveLength(2);
    expect(page1.next_cursor).toEqual(expect.any(String));
    const second = await c.http("GET", `${q}&cursor=${encodeURIComponent(page1.next_cursor ?? "")}`, {
      token: admin,
    });
    const page2 = second.json as unknown as { records: AuditRecord[] };
    const seqs = [...page1.records, ...page2.records].map((r) => r.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => y - x));
    expect(new Set(seqs).size).toBe(seqs.length);
    for (const r of [...page1.records, ...page2.records]) expect(r.agent).toBe(B);
    const tools = await c.http("GET", `/v1/audit?event=tool_call&lease_id=${ids.leaseB}`, { token: admin });
    expect((tools.json.records as AuditRecord[]).map((r) => r.target)).toEqual(["orders.status"]);
    await waitForRecord("the audit of the query", (r) => r.event === "admin" && r.scope === "audit_query");
  });

  it("answers who, for whom, approved by whom, which tool and which scope, each from a field", async () => {
    const recs = await allRecords();
    expectValidAuditRecords(recs, "audit files");
    const events = new Set(recs.map((r) => r.event));
    for (const e of [
      "decision",
      "checkout",
      "reveal",
      "renew",
      "tool_call",
      "checkin",
      "expiry",
      "revocation",
      "rotation_started",
      "rotation_succeeded",
      "rotation_failed",
      "quarantine",
      "registration",
      "policy_reload",
      "admin",
    ]) {
      expect(events.has(e as AuditRecord["event"]), `an ${e} record`).toBe(true);
    }
    const decisions = recs.filter((r) => r.event === "decision");
    expect(new Set(decisions.map((r) => r.decision))).toEqual(
      new Set(["allow", "deny", "approval_required"]),
    );
    for (const s of [
      "checkout",
      "reveal",
      "renew",
      "tool_call",
      "approval_requested",
      "approved",
      "denied",
    ]) {
      expect(
        decisions.some((r) => r.scope === s),
        `a decision with scope ${s}`,
      ).toBe(true);
    }

    // Who: the agent of each lease, on every record of it.
    const ofLease = (id: string) => recs.filter((r) => r.lease_id === id);
    for (const [id, agent] of [
      [ids.leaseA, A],
      [ids.leaseB, B],
      [ids.leaseExpired, A],
    ] as const) {
      expect(ofLease(id).length).toBeGreaterThan(3);
      for (const r of ofLease(id)) expect(r.agent, `${r.event} of ${id}`).toBe(agent);
    }
    // For whom: no delegation yet, stated as an empty chain on every record that names an agent.
    for (const r of recs.filter((x) => x.agent !== undefined)) expect(r.agent_chain, r.event).toEqual([]);
    // Approved by whom: alice on the approval and on every later record of B's lease.
    const approved = decisions.find((r) => r.scope === "approved");
    expect(approved).toMatchObject({ agent: B, approver: "alice", decision: "allow", task_id: "CHG-7" });
    const afterApproval = recs.filter((r) => r.seq > (approved?.seq ?? 0) && r.lease_id === ids.leaseB);
    expect(afterApproval.map((r) => r.event)).toEqual(
      expect.arrayContaining(["checkout", "reveal", "tool_call", "revocation", "rotation_succeeded"]),
    );
    for (const r of afterApproval) expect(r.approver, `${r.event} of B's lease`).toBe("alice");
    expect(decisions.find((r) => r.scope === "denied")).toMatchObject({
      agent: A,
      approver: "bob",
      decision: "deny",
    });
    for (const r of ofLease(ids.leaseA)) expect(r.approver).toBeUndefined();
    // Which tool: each tool call with its tool, action, target and digest.
    const toolCalls = recs.filter((r) => r.event === "tool_call");
    expect(toolCalls.map((r) => [r.lease_id, r.tool, r.intent, r.target])).toEqual([
      [ids.leaseA, "psql", "read", "orders"],
      [ids.leaseA, "psql", "read", "customers"],
      [ids.leaseB, "psql", "write", "orders.status"],
    ]);
    expect(toolCalls[0]?.digest).toBe(digest("select sum(total) from orders"));
    // Which scope: the checkout's task, intent and tool; the decision's action.
    expect(recs.find((r) => r.event === "checkout" && r.lease_id === ids.leaseB)).toMatchObject({
      scope: "checkout",
      task_id: "CHG-7",
      intent: "write",
      tool: "migrate",
      resource: "orders-db",
      account: expect.stringMatching(/^app_orders_/),
    });
    expect(recs.find((r) => r.event === "revocation" && r.lease_id === ids.leaseB)?.reason).toBe(
      "incident drill",
    );
    expect(recs.find((r) => r.event === "expiry")?.lease_id).toBe(ids.leaseExpired);
  });

  it("`leasehold audit query` answers from the files", async () => {
    const r = await stack.cli(
      "--json",
      "audit",
      "query",
      "--agent",
      B,
      "--resource",
      "orders-db",
      "--since",
      "1h",
      "--event",
      "checkout",
    );
    expect(r.code, r.stderr).toBe(0);
    const page = JSON.parse(r.stdout) as { records: AuditRecord[] };
    expect(page.records.map((x) => x.lease_id)).toEqual([ids.leaseB]);
    const table = await stack.cli("audit", "query", "--lease", ids.leaseB, "--event", "tool_call");
    expect(table.stdout).toContain("orders-db");
    expect(table.stdout).toContain("alice");
  });

  it("`audit verify` passes across rotated files with the hmac, and fails on tampered copies", async () => {
    const set = await auditFileSet(auditFile);
    expect(set.length).toBeGreaterThan(2);
    const ok = await stack.cli("audit", "verify");
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(
      new RegExp(`^ok: \\d+ records in ${set.length} file\\(s\\), chain intact, hmac verified`),
    );

    const tampered = async (name: string, change: (lines: string[]) => string[]) => {
      const dir = await mkdtemp(join(stack.dir, `copy-${name}-`));
      const copies: string[] = [];
      for (const f of set) {
        const to = join(dir, f.slice(f.lastIndexOf("/") + 1));
        await copyFile(f, to);
        copies.push(to);
      }
      const victim = copies[1] as string;
      const lines = (await readFile(victim, "utf8")).split("\n").slice(0, -1);
      await writeFile(victim, `${change(lines).join("\n")}\n`);
      const r = await stack.cli("audit", "verify", ...copies);
      return { r, victim };
    };
    const oneByte = await tampered("byte", (lines) => {
      const l = lines[1] as string;
      const at = l.indexOf('"time":"') + 11; // the last digit of the year
      return [
        lines[0] as string,
        `${l.slice(0, at)}${l[at] === "9" ? "8" : "9"}${l.slice(at + 1)}`,
        ...lines.slice(2),
      ];
    });
    expect(oneByte.r.code).toBe(1);
    expect(oneByte.r.stdout).toContain(`BROKEN at ${oneByte.victim} line 2`);
    const removed = await tampered("removed", (lines) => [lines[0] as string, ...lines.slice(2)]);
    expect(removed.r.code).toBe(1);
    expect(removed.r.stdout).toContain(`BROKEN at ${removed.victim} line 2`);
    const swapped = await tampered("swapped", (lines) => [
      lines[0] as string,
      lines[2] as string,
      lines[1] as string,
      ...lines.slice(3),
    ]);
    expect(swapped.r.code).toBe(1);
    expect(swapped.r.stdout).toContain(`BROKEN at ${swapped.victim} line 2`);
  });

  it("the Redis stream mirrors the chain, and no secret is in the files or the stream", async () => {
    for (const [resource, account] of [
      ["orders-db", "app_orders_1"],
      ["orders-db", "app_orders_2"],
      ["scratch-db", "app_scratch_1"],
    ] as const) {
      await c.vaultAccount(resource, account);
    }
    const streamKey = `${stack.prefix}audit`;
    const stream = (await readAuditStream(redis, streamKey, { count: 100_000 })).map((e) => e.record);
    const files = await allRecords();
    expectValidAuditRecords(stream, "stream");
    // The stream holds the same records as the files (the restart began both from scratch).
    expect(stream.map((r) => r.hash)).toEqual(files.map((r) => r.hash));
    const key = await loadAuditKey(join(stack.dir, "audit.key"));
    const checker = new ChainChecker({ hmacKey: key });
    expect(stream.map((r) => checker.check(r)?.problem ?? null)).toEqual(stream.map(() => null));

    const rawStream = (await redis.xrange(streamKey, "-", "+")).flatMap(([, fields]) => fields).join("\n");
    let rawFiles = "";
    for (const f of await auditFileSet(auditFile)) rawFiles += await readFile(f, "utf8");
    const secrets = [...new Set(c.secrets.filter((s) => s.length >= 12))];
    expect(secrets.length).toBeGreaterThan(15);
    const leaks: string[] = [];
    for (const [i, s] of secrets.entries()) {
      // A JWT's signature alone is enough to tell it apart from the public header and claims.
      // Only a JWT's shape counts: a generated password may hold two dots too, and its last piece
      // can be one character long, found anywhere.
      const jwt = /^[\w-]+\.[\w-]+\.([\w-]{40,})$/.exec(s);
      const needles = jwt?.[1] ? [s, jwt[1]] : [s];
      for (const n of needles) {
        if (rawFiles.includes(n)) leaks.push(`secret #${i} in the audit files`);
        if (rawStream.includes(n)) leaks.push(`secret #${i} in the audit stream`);
      }
    }
    expect(leaks).toEqual([]);
  });
});
