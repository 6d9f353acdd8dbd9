import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { identityFetch } from "../../sidecar/client/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StackClient } from "../support/e2e-client.js";
import { captureWire, type WireDirection } from "../support/mcp-wire.js";
import { agentsReadPolicy, type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/**
 * `POST /mcp` on a real sidecar (the built CLI's `serve`) driven by the MCP SDK's own client over
 * the Streamable HTTP transport, authenticated by agent a's identity JWT, against the private
 * PostgreSQL cluster. Every JSON-RPC message both ways is captured and searched for passwords and
 * tokens.
 */

const PG_USER = "app_mcp_http";
const INITIAL = "initial-pg-mcp-http-123456";

let stack: Stack;
let c: StackClient;
let mcp: Client;
let transport: StreamableHTTPClientTransport;
/** Every JSON-RPC message as it crossed the transport: direction and text. */
const wire: Array<{ dir: WireDirection; text: string }> = [];

interface ToolAnswer {
  isError?: boolean;
  structuredContent?: Record<string, unknown>;
  content: Array<{ type: string; text?: string }>;
}

const text = (r: ToolAnswer) => r.content.map((p) => p.text ?? "").join("\n");

async function tool(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const r = (await mcp.callTool({ name, arguments: args })) as ToolAnswer;
  expect(r.isError, text(r)).toBeFalsy();
  return r.structuredContent ?? {};
}

beforeAll(async () => {
  stack = await startStack({ policy: agentsReadPolicy(["orders-db"]) });
  c = new StackClient(stack);
  await stack.createRole(PG_USER, INITIAL);
  c.secrets.push(INITIAL, stack.adminPassword);
  await c.registerPostgres("orders-db", { accounts: [PG_USER] });
  await c.adminToken();
  // As README shows: the SDK's identityFetch signs a fresh assertion for every request.
  transport = new StreamableHTTPClientTransport(new URL(`${stack.sidecar.url}/mcp`), {
    fetch: identityFetch({ keyFile: await c.keyFile("a") }),
  });
  captureWire(transport, (dir, m) => wire.push({ dir, text: JSON.stringify(m) }));
  mcp = new Client({ name: "mcp-http-e2e", version: "1.0.0" });
  await mcp.connect(transport);
}, 240_000);

afterAll(async () => {
  await transport?.terminateSession().catch(() => undefined);
  await mcp?.close().catch(() => undefined);
  await stack?.close();
});

describe("MCP over HTTP on the sidecar (POST /mcp)", () => {
  it("the protected-resource metadata names the endpoint; no token gets 401 pointing at it", async () => {
    const meta = await c.http("GET", "/.well-known/oauth-protected-resource");
    expect(meta.status).toBe(200);
    expect(meta.json.resource).toBe(`${stack.sidecar.url}/mcp`);
    const refused = await fetch(`${stack.sidecar.url}/mcp`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toBe(
      `Bearer resource_metadata="${stack.sidecar.url}/.well-known/oauth-protected-resource"`,
    );
  });

  it("tools/list, then checkout → sql_query → lease_status → checkin on PostgreSQL; the old password is refused after", async () => {
    const { tools } = await mcp.listTools();
    expect(tools.map((t) => t.name)).toEqual(
      expect.arrayContaining(["checkout", "sql_query", "checkin", "lease_status", "list_resources"]),
    );
    const lease = await tool("checkout", {
      resource: "orders-db",
      task_id: "MCP-HTTP-1",
      intent: "read",
      tool: "psql",
    });
    expect(lease).toMatchObject({ resource: "orders-db", account: PG_USER, state: "active" });
    const id = String(lease.lease_id);
    const password = (await c.vaultAccount("orders-db", PG_USER)).password;
    c.secrets.push(password);
    const rows = await tool("sql_query", { lease_id: id, sql: "select current_user as me" });
    expect(rows).toMatchObject({ columns: ["me"], rows: [[PG_USER]] });
    expect(await tool("lease_status", { lease_id: id })).toMatchObject({ lease_id: id, state: "active" });
    const done = await tool("checkin", { lease_id: id });
    expect(done).toMatchObject({ lease_id: id, state: "ended", end_reason: "checkin" });
    await c.waitForAccounts("orders-db", "available");
    await waitFor(
      "the account rotated after check-in",
      async () => (await c.vaultAccount("orders-db", PG_USER)).password !== password,
    );
    expect(await stack.canLogin(PG_USER, password)).toBe(false);
  });

  it("the audit trail holds the tool calls of the session, as agent a with the client's name", async () => {
    const records = await c.auditRecords();
    const calls = records.filter(
      (r) => r.event === "tool_call" && r.scope === "tool_call" && r.agent === "spiffe://example.org/agent/a",
    );
    const tools = calls.map((r) => r.tool);
    expect(tools).toEqual(expect.arrayContaining(["checkout", "sql_query", "lease_status", "checkin"]));
    for (const r of calls) expect(r.client, String(r.tool)).toBe("mcp-http-e2e");
    const checkout = records.find((r) => r.event === "checkout" && r.resource === "orders-db");
    expect(checkout?.task_id).toBe("MCP-HTTP-1");
  });

  it("no password, lease token, identity token or admin token crosses the wire", async () => {
    expect(wire.length).toBeGreaterThan(8);
    const all = wire.map((m) => m.text).join("\n");
    expect(c.secrets.length).toBeGreaterThan(3);
    for (const s of c.secrets) expect(all.includes(s), "a secret in the MCP messages").toBe(false);
    // Lease tokens are JWTs: none appears in any message.
    expect(all).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/);
  });
});
