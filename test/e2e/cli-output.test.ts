import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StackClient } from "../support/e2e-client.js";
import { DEMO_POLICY, type Stack, startStack } from "../support/stack.js";

/**
 * Issue 18 item 5: every listing command takes `--output table|json` (the global `--json` stays
 * as its alias); json is the API's answer as one JSON document on stdout and nothing else.
 * Against a running sidecar with a resource, a lease and a pending approval in it.
 */

/** Reads go through; a write waits for a human's approval. */
const POLICY = `${DEMO_POLICY}
@id("writes-need-approval")
permit (
  principal,
  action == Action::"checkout",
  resource == Resource::"orders-db"
)
when { context.intent == "write" && context.ttl <= 600 && context.approved };
`;

let stack: Stack;
let client: StackClient;
let adminToken: string;
let leaseId: string;
let approvalId: string;

beforeAll(async () => {
  stack = await startStack({ policy: POLICY });
  client = new StackClient(stack);
  adminToken = await client.adminToken();
  client.secrets.push(stack.adminPassword);
  const password = randomBytes(12).toString("hex");
  client.secrets.push(password);
  await stack.createRole("app_out_1", password);
  await client.registerPostgres("orders-db", {
    accounts: ["app_out_1"],
    extra: { rotateWith: "admin", lease: { defaultTtl: 300, maxTtl: 600 } },
  });
  const task = (id: string, action: string) => ({
    resource: "orders-db",
    task: { id, description: "cli output e2e" },
    intent: { action, tool: "psql" },
    ttl: 300,
  });
  const read = await client.http("POST", "/v1/checkout", {
    token: await client.assertion("a"),
    body: task("OUT-1", "read"),
  });
  // On failure, only the error body: a success carries the lease token.
  expect(read.status, JSON.stringify(read.json.error)).toBe(201);
  client.secrets.push((read.json as { token: string }).token);
  leaseId = (read.json.lease as { id: string }).id;
  const write = await client.http("POST", "/v1/checkout", {
    token: await client.assertion("b"),
    body: task("OUT-2", "write"),
  });
  expect(write.status, JSON.stringify(write.json.error)).toBe(202);
  approvalId = (write.json.approval as { id: string }).id;
}, 180_000);

afterAll(async () => {
  if (stack) {
    const out = stack.sidecar.output();
    for (const s of client.secrets) expect(out.includes(s)).toBe(false);
    await stack.close();
  }
});

/** Runs the CLI and answers its stdout parsed as exactly one JSON document (stderr empty). */
async function jsonOf(...args: string[]): Promise<unknown> {
  const r = await stack.cli(...args);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(r.stdout.endsWith("}\n")).toBe(true);
  return JSON.parse(r.stdout);
}

async function api(path: string): Promise<unknown> {
  const res = await client.http("GET", path, { token: adminToken });
  expect(res.status).toBe(200);
  return res.json;
}

/** A leases answer without `ttl_seconds`, which counts down between two reads. */
function steady(answer: unknown): unknown {
  const { leases } = answer as { leases: Array<Record<string, unknown>> };
  return {
    leases: leases.map(({ ttl_seconds, ...rest }) => {
      expect(ttl_seconds).toBeGreaterThan(0);
      return rest;
    }),
  };
}

describe("--output json on every listing command", () => {
  it("leases list: the API's leases, and --json gives the same", async () => {
    const out = (await jsonOf("leases", "list", "--output", "json")) as { leases: Array<{ id: string }> };
    expect(steady(out)).toEqual(steady(await api("/v1/leases")));
    expect(out.leases.map((l) => l.id)).toEqual([leaseId]);
    expect(steady(await jsonOf("--json", "leases", "list"))).toEqual(steady(out));
    expect(steady(await jsonOf("leases", "list", "-o", "json", "--resource", "orders-db"))).toEqual(
      steady(out),
    );
  });

  it("leases list pages: --limit and --cursor reach the API; a bad one names the flag or field", async () => {
    const one = (await jsonOf("leases", "list", "-o", "json", "--limit", "1")) as {
      leases: Array<{ id: string }>;
      next_cursor?: string;
    };
    expect(one.leases.map((l) => l.id)).toEqual([leaseId]);
    // A full page may still name a next one; following it ends the listing.
    if (one.next_cursor !== undefined) {
      const rest = (await jsonOf("leases", "list", "-o", "json", "--cursor", one.next_cursor)) as {
        leases: unknown[];
        next_cursor?: string;
      };
      expect(rest).toEqual({ leases: [] });
    }
    const zero = await stack.cli("leases", "list", "--limit", "0");
    expect(zero.code).not.toBe(0);
    expect(zero.stderr).toContain("--limit");
    const cursor = await stack.cli("leases", "list", "--cursor", "not-a-cursor");
    expect(cursor.code).not.toBe(0);
    expect(cursor.stderr).toContain("cursor");
  });

  it("resources list: the API's resources", async () => {
    const out = await jsonOf("resources", "list", "--output", "json");
    expect(out).toEqual(await api("/v1/resources"));
    expect(out).toMatchObject({ resources: [{ name: "orders-db", adapter: "postgres", accounts: 1 }] });
  });

  it("approvals list: the API's pending approvals", async () => {
    const out = (await jsonOf("approvals", "list", "--output", "json")) as {
      approvals: Array<{ id: string }>;
    };
    expect(out).toEqual(await api("/v1/approvals?status=pending&limit=50"));
    expect(out.approvals.map((a) => a.id)).toEqual([approvalId]);
  });

  it("audit query: one page of records, as the audit query route answers", async () => {
    const out = (await jsonOf("audit", "query", "--event", "checkout", "--output", "json")) as {
      records: Array<{ event: string; lease_id?: string }>;
    };
    expect(out.records.length).toBeGreaterThan(0);
    expect(out.records.every((r) => r.event === "checkout")).toBe(true);
    expect(out.records.some((r) => r.lease_id === leaseId)).toBe(true);
    expect(out).toEqual(await api("/v1/audit?event=checkout&limit=50"));
  });

  it("adapters list: every adapter's id and description", async () => {
    const out = (await jsonOf("adapters", "list", "--output", "json")) as { adapters: Array<{ id: string }> };
    expect(out.adapters.map((a) => a.id)).toEqual(expect.arrayContaining(["postgres", "mysql", "ldap"]));
  });

  it("table stays the default, and an unknown format names the valid ones", async () => {
    const table = await stack.cli("leases", "list");
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^LEASE\s+RESOURCE\s+ACCOUNT/);
    expect(table.stdout).toContain(leaseId);
    const bad = await stack.cli("leases", "list", "--output", "yaml");
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toBe("");
    expect(bad.stderr).toContain("Allowed choices are table, json");
  });
});
