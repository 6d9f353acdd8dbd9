import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StackClient } from "../support/e2e-client.js";
import { captureWire, type WireDirection } from "../support/mcp-wire.js";
import { asSuperuser } from "../support/pg-cluster.js";
import { createMariadbAccountAndAdmin, dropMariadbAccounts, mariadbLogin } from "../support/mariadb.js";
import { redisLogin, startRedisServer, type TestRedisServer } from "../support/redis-server.js";
import { cliPath, repoRoot } from "../support/sidecar-process.js";
import { ldapLogin, startSlapd, type TestSlapd } from "../support/slapd.js";
import { agentsReadPolicy, approvedWritesPolicy, type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/**
 * `leasehold mcp` driven by the MCP SDK's own client over stdio, launched from the README's
 * configuration block, against the real stack: PostgreSQL (revealed and through its listener),
 * MariaDB, Redis and a private slapd. Every JSON-RPC message both ways is captured and searched
 * for passwords and tokens.
 */

const tag = randomBytes(3).toString("hex");
const PG_USER = `app_mcp_${tag}`;
const PG_SEALED = `app_mcp_sealed_${tag}`;
const MY_USER = `lh_mcp_${tag}`;
const MY_ADMIN = `lh_mcp_admin_${tag}`;
const REDIS_USER = "svc_mcp";
const LDAP_USER = "svc_mcp_reader";

const READ = ["orders-db", "sealed-db", "reports-mysql", "cache-redis", "people-ldap"];
// sealed-db decides each statement through its listener (proxy.statementPolicy): reads may only select.
const POLICY = `${agentsReadPolicy(READ)}\n${approvedWritesPolicy("orders-db")}
@id("sealed-reads-select")
permit (principal, action == Action::"statement", resource == Resource::"sealed-db")
when { context.intent == "read" && context.statement_kind == "select" };
`;

let stack: Stack;
let c: StackClient;
let rs: TestRedisServer;
let slapd: TestSlapd;
let mcp: Client;
let transport: StdioClientTransport;
let stderr = "";
/** Every JSON-RPC message, as it crossed the pipe: direction and text. */
const wire: Array<{ dir: WireDirection; text: string; at: number }> = [];

interface ToolAnswer {
  isError?: boolean;
  structuredContent?: Record<string, unknown>;
  content: Array<{ type: string; text?: string }>;
}

async function tool(
  name: string,
  args: Record<string, unknown>,
  onprogress?: (p: { progress: number; message?: string }) => void,
): Promise<ToolAnswer> {
  return (await mcp.callTool(
    { name, arguments: args },
    undefined,
    onprogress ? { onprogress, resetTimeoutOnProgress: true, timeout: 60_000 } : undefined,
  )) as ToolAnswer;
}

function text(r: ToolAnswer): string {
  return r.content.map((p) => p.text ?? "").join("\n");
}

function ok(r: ToolAnswer): Record<string, unknown> {
  expect(r.isError, text(r)).toBeFalsy();
  expect(r.structuredContent).toBeDefined();
  return r.structuredContent ?? {};
}

/** The README's MCP client configuration, parsed from the block under "Use from an MCP client". */
async function readmeConfig(): Promise<{ command: string; args: string[]; env: Record<string, string> }> {
  const readme = await readFile(join(repoRoot(), "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("### Use from an MCP client"));
  const block = /```json\n([\s\S]*?)```/.exec(section)?.[1];
  if (block === undefined) throw new Error("README: no json block under 'Use from an MCP client'");
  const doc = JSON.parse(block) as {
    mcpServers: Record<string, { command: string; args: string[]; env: Record<string, string> }>;
  };
  const entry = doc.mcpServers.leasehold;
  if (entry === undefined) throw new Error("README: no mcpServers.leasehold");
  return entry;
}

/** Waits until the account's password in Vault is not `old` any more (rotated after check-in). */
async function rotatedAway(resource: string, account: string, old: string): Promise<void> {
  await c.waitForAccounts(resource, "available");
  await waitFor(
    `${resource}/${account} rotated`,
    async () => (await c.vaultAccount(resource, account)).password !== old,
  );
}

beforeAll(async () => {
  [stack, rs, slapd] = await Promise.all([
    startStack({ policy: POLICY, config: { approvals: { ttl: 30 } } }),
    startRedisServer(),
    startSlapd(),
  ]);
  c = new StackClient(stack);
  await stack.createRole(PG_USER, "initial-pg-mcp-123456");
  await stack.createRole(PG_SEALED, "initial-pg-mcp-654321");
  // A table the sealed account owns: PostgreSQL itself would let it drop the table.
  await asSuperuser(stack.pg, async (su) => {
    await su.query("CREATE TABLE mcp_orders (id int); INSERT INTO mcp_orders VALUES (1), (2)");
    await su.query(`ALTER TABLE mcp_orders OWNER TO ${PG_SEALED}`);
  });
  c.secrets.push("initial-pg-mcp-123456", "initial-pg-mcp-654321", stack.adminPassword);
  await createMariadbAccountAndAdmin(
    { name: MY_USER, password: "initial-mysql-mcp-1234" },
    { name: MY_ADMIN, password: "admin-mysql-mcp-12345" },
  );
  await rs.addUser(REDIS_USER, "initial-redis-mcp-1234");
  const r = await rs.rootConnection();
  try {
    await r.call("ACL", "SETUSER", REDIS_USER, "~mcp:*", "+get", "+set", "+rpush", "+lrange", "+del");
  } finally {
    r.disconnect();
  }
  await slapd.addUser(LDAP_USER, "initial-ldap-mcp-1234");
  c.secrets.push(
    "initial-mysql-mcp-1234",
    "admin-mysql-mcp-12345",
    "initial-redis-mcp-1234",
    rs.admin.password,
    "initial-ldap-mcp-1234",
    slapd.rotator.password,
  );
  await c.registerPostgres("orders-db", { accounts: [PG_USER] });
  await c.registerPostgres("sealed-db", {
    accounts: [PG_SEALED],
    extra: { reveal: false, proxy: { port: 0, statementPolicy: true } },
  });
  await c.register({
    name: "reports-mysql",
    adapter: "mysql",
    connection: { host: "127.0.0.1", port: 3306 },
    admin: { username: MY_ADMIN, password: "admin-mysql-mcp-12345" },
    accounts: [MY_USER],
  });
  await c.register({
    name: "cache-redis",
    adapter: "redis-acl",
    connection: { host: "127.0.0.1", port: rs.port },
    admin: rs.admin,
    accounts: [REDIS_USER],
  });
  await c.register({
    name: "people-ldap",
    adapter: "ldap",
    connection: { url: slapd.url, accountDn: slapd.accountDnTemplate },
    admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
    accounts: [LDAP_USER],
  });
  await c.adminToken();

  // Launch exactly what the README tells an MCP client, with this stack's address and key.
  const cfg = await readmeConfig();
  expect(cfg.command).toBe("leasehold");
  expect(cfg.args).toEqual(["mcp"]);
  expect(Object.keys(cfg.env).sort()).toEqual(["LEASEHOLD_ADDR", "LEASEHOLD_AGENT_KEY"]);
  transport = new StdioClientTransport({
    command: process.execPath,
    args: [cliPath(), ...cfg.args],
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      ...cfg.env,
      LEASEHOLD_ADDR: stack.sidecar.url,
      LEASEHOLD_AGENT_KEY: await c.keyFile("a"),
    },
    stderr: "pipe",
  });
  transport.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  captureWire(transport, (dir, m) => wire.push({ dir, text: JSON.stringify(m), at: performance.now() }));
  mcp = new Client({ name: "mcp-e2e-client", version: "1.0.0" });
  await mcp.connect(transport);
}, 240_000);

afterAll(async () => {
  if (process.env.MCP_E2E_DEBUG)
    console.log(`leasehold mcp stderr:\n${stderr}\nsidecar:\n${stack?.sidecar.output().slice(-6000)}`);
  await mcp?.close().catch(() => undefined);
  await stack?.close();
  await rs?.stop();
  await slapd?.stop();
  await dropMariadbAccounts(MY_USER, MY_ADMIN);
});

describe("leasehold mcp on stdio, launched from the README's configuration", () => {
  it("tools/list names every tool with an input and an output schema; the resource and the prompt are there", async () => {
    const { tools } = await mcp.listTools();
    const names = tools.map((t) => t.name).sort();
    expect(names).toEqual(
      [
        "checkin",
        "checkout",
        "ldap_search",
        "lease_status",
        "list_resources",
        "redis_command",
        "renew",
        "sql_query",
      ].sort(),
    );
    for (const t of tools) {
      expect(t.inputSchema.type, t.name).toBe("object");
      expect(t.outputSchema?.type, t.name).toBe("object");
      expect(t.description, t.name).toBeTruthy();
    }
    const checkout = tools.find((t) => t.name === "checkout");
    expect(checkout?.inputSchema.required).toEqual(expect.arrayContaining(["resource", "task_id", "intent"]));
    const sql = tools.find((t) => t.name === "sql_query");
    expect(Object.keys(sql?.outputSchema?.properties ?? {})).toEqual(
      expect.arrayContaining(["columns", "rows", "truncated"]),
    );
    const listed = ok(await tool("list_resources", {}));
    const byName = Object.fromEntries(
      (listed.resources as Array<{ name: string; adapter: string; session: string }>).map((r) => [r.name, r]),
    );
    expect(Object.keys(byName).sort()).toEqual([...READ].sort());
    expect(byName["orders-db"]).toMatchObject({ adapter: "postgres", session: "credential" });
    expect(byName["sealed-db"]).toMatchObject({ adapter: "postgres", session: "proxy" });
    expect(byName["cache-redis"]?.adapter).toBe("redis-acl");
    const { resources } = await mcp.listResources();
    expect(resources.map((r) => r.uri)).toContain("leasehold://leases");
    const prompt = await mcp.getPrompt({ name: "use-a-database", arguments: { resource: "orders-db" } });
    const first = prompt.messages[0]?.content as { text?: string };
    expect(first.text).toContain("checkin");
    expect(mcp.getServerVersion()?.name).toBe("leasehold");
  });

  it("PostgreSQL (revealed): checkout → sql_query → checkin; rows are capped; the old password is refused after", async () => {
    const lease = ok(
      await tool("checkout", { resource: "orders-db", task_id: "MCP-1", intent: "read", tool: "psql" }),
    );
    expect(lease).toMatchObject({
      resource: "orders-db",
      account: PG_USER,
      state: "active",
      session: "credential",
    });
    expect(Object.keys(lease)).not.toContain("token");
    const id = String(lease.lease_id);
    const password = (await c.vaultAccount("orders-db", PG_USER)).password;

    const who = ok(
      await tool("sql_query", {
        lease_id: id,
        sql: "select current_user as me, $1::int + 1 as n",
        params: [41],
      }),
    );
    expect(who).toMatchObject({
      columns: ["me", "n"],
      rows: [[PG_USER, 42]],
      row_count: 1,
      truncated: false,
    });

    const many = ok(
      await tool("sql_query", { lease_id: id, sql: "select g from generate_series(1, 500) g" }),
    );
    expect(many).toMatchObject({ row_count: 100, truncated: true });
    const few = ok(
      await tool("sql_query", { lease_id: id, sql: "select g from generate_series(1, 500) g", max_rows: 3 }),
    );
    expect(few).toMatchObject({ rows: [[1], [2], [3]], truncated: true });

    const bad = await tool("sql_query", { lease_id: id, sql: "select * from no_such_table" });
    expect(bad.isError).toBe(true);
    expect(text(bad)).toMatch(/no_such_table.*does not exist/);

    const status = ok(await tool("lease_status", { lease_id: id }));
    expect(status).toMatchObject({ lease_id: id, state: "active" });
    const renewed = ok(await tool("renew", { lease_id: id, ttl: 120 }));
    expect(renewed.lease_id).toBe(id);

    const leases = await mcp.readResource({ uri: "leasehold://leases" });
    expect(JSON.stringify(leases.contents)).toContain(id);

    const done = ok(await tool("checkin", { lease_id: id }));
    expect(done).toMatchObject({ lease_id: id, state: "ended", end_reason: "checkin" });
    await rotatedAway("orders-db", PG_USER, password);
    expect(await stack.canLogin(PG_USER, password)).toBe(false);

    const gone = await tool("sql_query", { lease_id: id, sql: "select 1" });
    expect(gone.isError).toBe(true);
    expect(text(gone)).toContain("holds no lease");
  });

  it("PostgreSQL through its listener (reveal: false): queries work, ALTER ROLE … PASSWORD is refused by the listener", async () => {
    const lease = ok(await tool("checkout", { resource: "sealed-db", task_id: "MCP-2", intent: "read" }));
    expect(lease.session).toBe("proxy");
    const id = String(lease.lease_id);
    const who = ok(await tool("sql_query", { lease_id: id, sql: "select current_user" }));
    expect(who.rows).toEqual([[PG_SEALED]]);
    const refused = await tool("sql_query", {
      lease_id: id,
      sql: "ALTER ROLE CURRENT_USER PASSWORD 'mine-now-123'",
    });
    expect(refused.isError).toBe(true);
    expect(text(refused)).toContain("listener refused this statement");
    expect(text(refused)).toContain("42501");
    // The session goes on.
    expect(ok(await tool("sql_query", { lease_id: id, sql: "select 2 as two" })).rows).toEqual([[2]]);
    ok(await tool("checkin", { lease_id: id }));
  });

  it("statement policy through the listener: under intent read SELECT works, DROP TABLE is an isError and the table stays", async () => {
    await c.waitForAccounts("sealed-db", "available");
    const lease = ok(await tool("checkout", { resource: "sealed-db", task_id: "MCP-7", intent: "read" }));
    const id = String(lease.lease_id);
    const count = { lease_id: id, sql: "select count(*)::int as n from mcp_orders" };
    expect(ok(await tool("sql_query", count)).rows).toEqual([[2]]);
    const drop = await tool("sql_query", { lease_id: id, sql: "DROP TABLE mcp_orders" });
    expect(drop.isError).toBe(true);
    expect(text(drop)).toContain("refused by policy");
    expect(text(drop)).toContain("42501");
    expect(text(drop)).toContain("listener refused this statement");
    // The session goes on and the table is intact.
    expect(ok(await tool("sql_query", count)).rows).toEqual([[2]]);
    ok(await tool("checkin", { lease_id: id }));
  });

  it("MariaDB: checkout → sql_query → checkin; the old password is refused after", async () => {
    const lease = ok(await tool("checkout", { resource: "reports-mysql", task_id: "MCP-3", intent: "read" }));
    const id = String(lease.lease_id);
    const password = (await c.vaultAccount("reports-mysql", MY_USER)).password;
    const who = ok(
      await tool("sql_query", { lease_id: id, sql: "select current_user() as me, ? + 1 as n", params: [1] }),
    );
    expect(who.columns).toEqual(["me", "n"]);
    expect(who.rows).toEqual([[`${MY_USER}@%`, 2]]);
    const many = ok(
      await tool("sql_query", {
        lease_id: id,
        sql: "with recursive t(n) as (select 1 union all select n + 1 from t where n < 300) select n from t",
        max_rows: 5,
      }),
    );
    expect(many).toMatchObject({ rows: [[1], [2], [3], [4], [5]], truncated: true });
    ok(await tool("checkin", { lease_id: id }));
    await rotatedAway("reports-mysql", MY_USER, password);
    expect(await mariadbLogin(MY_USER, password)).toBe(false);
  });

  it("Redis: redis_command as the leased ACL user; AUTH is not sent for the model", async () => {
    const id = String(
      ok(await tool("checkout", { resource: "cache-redis", task_id: "MCP-4", intent: "read" })).lease_id,
    );
    const password = (await c.vaultAccount("cache-redis", REDIS_USER)).password;
    expect(
      ok(await tool("redis_command", { lease_id: id, command: "SET", args: ["mcp:k", "v1"] })).result,
    ).toBe("OK");
    expect(ok(await tool("redis_command", { lease_id: id, command: "GET", args: ["mcp:k"] })).result).toBe(
      "v1",
    );
    ok(
      await tool("redis_command", {
        lease_id: id,
        command: "RPUSH",
        args: ["mcp:l", ...Array.from({ length: 20 }, (_, i) => `${i}`)],
      }),
    );
    const list = ok(
      await tool("redis_command", {
        lease_id: id,
        command: "LRANGE",
        args: ["mcp:l", "0", "-1"],
        max_rows: 5,
      }),
    );
    expect(list).toEqual({ result: ["0", "1", "2", "3", "4"], truncated: true });
    const denied = await tool("redis_command", { lease_id: id, command: "GET", args: ["other:k"] });
    expect(denied.isError).toBe(true);
    expect(text(denied)).toContain("NOPERM");
    const auth = await tool("redis_command", { lease_id: id, command: "auth", args: ["x", "y"] });
    expect(auth.isError).toBe(true);
    ok(await tool("checkin", { lease_id: id }));
    await rotatedAway("cache-redis", REDIS_USER, password);
    // The old password is refused by the server itself.
    expect(await redisLogin(rs, REDIS_USER, password)).toBe(false);
  });

  it("LDAP: ldap_search bound as the leased account; password attributes never come back; the old password is refused after", async () => {
    const id = String(
      ok(await tool("checkout", { resource: "people-ldap", task_id: "MCP-5", intent: "read" })).lease_id,
    );
    const password = (await c.vaultAccount("people-ldap", LDAP_USER)).password;
    const found = ok(
      await tool("ldap_search", {
        lease_id: id,
        // The directory lets an account read only its own entry.
        base: slapd.accountDnTemplate.replace("{account}", LDAP_USER),
        scope: "base",
        filter: "(objectClass=*)",
        attributes: [],
      }),
    );
    const entries = found.entries as Array<{ dn: string; attributes: Record<string, string[]> }>;
    expect(entries).toHaveLength(1);
    expect(entries[0]?.dn.toLowerCase()).toContain(`uid=${LDAP_USER}`);
    expect(Object.keys(entries[0]?.attributes ?? {}).map((k) => k.toLowerCase())).not.toContain(
      "userpassword",
    );
    ok(await tool("checkin", { lease_id: id }));
    await rotatedAway("people-ldap", LDAP_USER, password);
    expect(await ldapLogin(slapd, LDAP_USER, password)).toBe(false);
  });

  it("a policy denial is an isError result saying what to do next", async () => {
    const r = await tool("checkout", { resource: "orders-db", task_id: "MCP-6", intent: "drop" });
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/^Policy denied/);
    expect(text(r)).toContain("another intent");
    expect(text(r)).not.toMatch(/\n\s+at /);
  });

  it("an expired lease: the next call is an isError result telling the model to check out again", async () => {
    const id = String(
      ok(await tool("checkout", { resource: "orders-db", task_id: "MCP-7", intent: "read", ttl: 1 }))
        .lease_id,
    );
    await waitFor(
      `lease ${id} to expire`,
      async () => {
        const s = await tool("lease_status", { lease_id: id });
        return s.isError === true && text(s);
      },
      { intervalMs: 250 },
    );
    const r = await tool("sql_query", { lease_id: id, sql: "select 1" });
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/expired.*checkout again/s);
    ok(await tool("checkin", { lease_id: id }));
    await c.waitForAccounts("orders-db", "available");
  });

  /** Starts a checkout that needs approval; resolves once the first progress notification names it. */
  async function pendingCheckout(
    task: string,
  ): Promise<{ approval: string; result: Promise<ToolAnswer>; progress: string[] }> {
    const progress: string[] = [];
    let named: ((id: string) => void) | undefined;
    const approvalId = new Promise<string>((r) => {
      named = r;
    });
    const result = tool(
      "checkout",
      { resource: "orders-db", task_id: task, intent: "write", reason: "fix order 42" },
      (p) => {
        progress.push(p.message ?? "");
        const m = /apr_[A-Za-z0-9_-]+/.exec(p.message ?? "");
        if (m) named?.(m[0]);
      },
    );
    const approval = await Promise.race([
      approvalId,
      result.then((r) => {
        throw new Error(`checkout answered before any progress: ${text(r)}`);
      }),
    ]);
    return { approval, result, progress };
  }

  it("an approval: progress notifications arrive, an operator approves with the CLI, the tool returns the lease", async () => {
    const { approval, result, progress } = await pendingCheckout("MCP-8");
    expect(progress[0]).toMatch(/^waiting for approval apr_.*ask an operator/);
    const ok1 = await stack.cli("approvals", "approve", approval, "--as", "alice@example.org");
    expect(ok1.code, ok1.stderr).toBe(0);
    const lease = ok(await result);
    expect(lease).toMatchObject({ resource: "orders-db", intent: "write", approver: "alice@example.org" });
    ok(await tool("checkin", { lease_id: String(lease.lease_id) }));
    await c.waitForAccounts("orders-db", "available");
  });

  it("a denied approval is an isError result", async () => {
    const { approval, result } = await pendingCheckout("MCP-9");
    const no = await stack.cli(
      "approvals",
      "deny",
      approval,
      "--as",
      "bob@example.org",
      "--reason",
      "not today",
    );
    expect(no.code, no.stderr).toBe(0);
    const r = await result;
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/^An approver denied the checkout/);
  });

  it("the audit log holds one tool_call per MCP tool call, with the tool, its arguments' digest and the client's name", async () => {
    const asked = new Map<string, number>();
    for (const m of wire) {
      if (m.dir !== "→") continue;
      const msg = JSON.parse(m.text) as { method?: string; params?: { name?: string } };
      if (msg.method === "tools/call" && msg.params?.name) {
        asked.set(msg.params.name, (asked.get(msg.params.name) ?? 0) + 1);
      }
    }
    const records = (await c.auditRecords()).filter(
      (r) => r.event === "tool_call" && r.scope === "tool_call",
    );
    const recorded = new Map<string, number>();
    for (const r of records) {
      expect(r.client, JSON.stringify(r)).toBe("mcp-e2e-client");
      expect(String(r.digest)).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(r.agent).toBe("spiffe://example.org/agent/a");
      recorded.set(String(r.tool), (recorded.get(String(r.tool)) ?? 0) + 1);
    }
    expect(Object.fromEntries(recorded)).toEqual(Object.fromEntries(asked));
    // A call on a lease carries the lease, its task and intent; a call without one (the listing,
    // a refused checkout) is the agent's.
    const sql = records.find((r) => r.tool === "sql_query" && r.lease_id);
    expect(sql).toMatchObject({ intent: "read", task_id: expect.any(String) });
    const listing = records.find((r) => r.tool === "list_resources");
    expect(listing?.lease_id).toBeUndefined();
  });

  it("no password, lease token or admin token crossed the MCP pipe or reached the server's stderr", async () => {
    const all = wire.map((m) => m.text).join("\n");
    expect(c.secrets.length).toBeGreaterThan(8);
    for (const s of c.secrets) {
      expect(all.includes(s)).toBe(false);
      expect(stderr.includes(s)).toBe(false);
    }
    // Lease tokens (and identity assertions) are JWTs: none crossed.
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+/);
    expect(stderr).not.toMatch(/eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+/);
    // Sizes, and for each answer the time since its request (as the client saw it).
    const sentAt = new Map<unknown, number>();
    const sizes = wire.map((m) => {
      const id = (JSON.parse(m.text) as { id?: unknown }).id;
      if (m.dir === "→" && id !== undefined) sentAt.set(id, m.at);
      const took = m.dir === "←" && sentAt.has(id) ? ` ${(m.at - (sentAt.get(id) ?? 0)).toFixed(1)} ms` : "";
      return `${m.dir} ${Buffer.byteLength(m.text)} B${took} ${m.text.slice(0, 90)}`;
    });
    console.log(`captured MCP session (${wire.length} messages):\n${sizes.join("\n")}`);
  });

  it("closing stdin checks in the leases the server still holds", async () => {
    const id = String(
      ok(await tool("checkout", { resource: "orders-db", task_id: "MCP-10", intent: "read" })).lease_id,
    );
    await mcp.close();
    const admin = await c.adminToken();
    await waitFor(`lease ${id} checked in at exit`, async () => {
      const l = await c.http("GET", `/v1/leases/${id}`, { token: admin });
      return l.json.state === "ended" && l.json.end_reason === "checkin";
    });
  });
});
