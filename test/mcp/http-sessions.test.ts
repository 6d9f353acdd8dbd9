import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createDpopKey } from "../../sidecar/client/dpop-key.js";
import { mintIdentityAssertion } from "../../sidecar/identity/index.js";
import type { McpLeaseHandle } from "../../sidecar/mcp/backend.js";
import type { McpServerFactory } from "../../sidecar/wire/mcp.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { useVault, type VaultHandle } from "../support/vault.js";
import { waitFor } from "../support/wait-for.js";

const A = "spiffe://example.org/agent/a";
const B = "spiffe://example.org/agent/b";
const ISSUER = "https://issuer.example.org";

/**
 * A tiny MCP server over the real backend: enough tools to show who a session acts as and that
 * a checkout goes through the service layer (the real tools are sidecar/mcp/server.ts's).
 */
const tinyServer: McpServerFactory = (backend, session) => {
  const server = new McpServer({ name: "tiny", version: "0" });
  const held = new Map<string, McpLeaseHandle>();
  const text = (t: string) => ({ content: [{ type: "text" as const, text: t }] });
  server.registerTool("whoami", { description: "the session's agent" }, async () =>
    text(`${session.subject} ${session.context().caller.subject}`),
  );
  server.registerTool(
    "checkout",
    { description: "check out", inputSchema: { resource: z.string() } },
    async ({ resource }) => {
      const h = await backend.checkout({
        resource,
        task: { id: "T-mcp" },
        intent: { action: "read", tool: "sql" },
        ttl: 120,
        forProxy: false,
      });
      held.set(h.lease.id, h);
      return text(h.lease.id);
    },
  );
  server.registerTool("catalog", { description: "what the agent could check out" }, async () => {
    const names = (await backend.listResources()).map((r) => r.name);
    await backend.reportToolCall({ tool: "catalog", action: "list", client: "tiny" });
    return text(names.join(","));
  });
  server.registerTool(
    "status",
    { description: "lease status", inputSchema: { lease_id: z.string() } },
    async ({ lease_id }) => text((await held.get(lease_id)?.status())?.state ?? "unknown"),
  );
  return server;
};

interface Raw {
  status: number;
  headers: Headers;
  text: string;
}

describe("MCP over HTTP: /mcp sessions", () => {
  let vault: VaultHandle;
  let lh: InProcessSidecar;
  let base: string;
  const clients: Client[] = [];

  const connect = async (
    token: string,
  ): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> => {
    const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    });
    const client = new Client({ name: "mcp-http-test", version: "1" });
    await client.connect(transport);
    clients.push(client);
    return { client, transport };
  };

  /** Ends a client's session (DELETE /mcp), then the client. */
  const end = async (client: Client): Promise<void> => {
    const t = client.transport;
    if (t instanceof StreamableHTTPClientTransport) await t.terminateSession();
    await client.close();
  };

  const post = async (headers: Record<string, string>, body: unknown): Promise<Raw> => {
    const res = await fetch(`${base}/mcp`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        ...headers,
      },
      body: JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, text: await res.text() };
  };

  const initialize = {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
  };
  const listTools = { jsonrpc: "2.0", id: 2, method: "tools/list" };

  beforeAll(async () => {
    vault = await useVault();
    lh = await startInProcessSidecar({
      vault,
      mcpServer: tinyServer,
      config: {
        identity: {
          trust: [
            { kind: "agents", jwks: "./trust/agents.jwks.json", subjects: ["spiffe://example.org/agent/*"] },
            // Never used to sign here: named so the metadata lists an authorization server.
            {
              kind: "issuer",
              jwks: "./trust/agents.jwks.json",
              issuer: ISSUER,
              subjects: ["spiffe://example.org/issued/*"],
            },
          ],
        },
        mcp: { maxSessionsPerAgent: 3 },
      },
    });
    base = await lh.listen();
    const put = await fetch(`${base}/v1/resources/${lh.resource}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${lh.sidecar.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify(lh.registration),
    });
    expect(put.status, await put.text()).toBe(201);
    await waitFor("the imported account to be available", async () => {
      const r = await fetch(`${base}/v1/resources/${lh.resource}`, {
        headers: { authorization: `Bearer ${lh.sidecar.adminToken}` },
      });
      const body = (await r.json()) as { accounts: Array<{ state: string }> };
      return body.accounts.every((a) => a.state === "available");
    });
  });
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await lh?.close();
    await vault?.close();
  });

  it("publishes the protected-resource metadata naming the trust entries' issuers", async () => {
    const res = await fetch(`${base}/.well-known/oauth-protected-resource`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      resource: `${base}/mcp`,
      authorization_servers: [ISSUER],
      bearer_methods_supported: ["header"],
      resource_name: "leasehold",
      dpop_signing_alg_values_supported: expect.arrayContaining(["EdDSA"]),
    });
  });

  it("answers a request without a valid token 401 with the metadata's address", async () => {
    for (const headers of [{}, { authorization: "Bearer not-a-jwt" }] as Record<string, string>[]) {
      const r = await post(headers, initialize);
      expect(r.status).toBe(401);
      expect(r.headers.get("www-authenticate")).toBe(
        `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource"`,
      );
      expect(JSON.parse(r.text).error.code).toBe("unauthenticated");
    }
  });

  it("the Host/Origin guard applies to /mcp", async () => {
    const token = await lh.identity("a");
    const res = await lh.sidecar.app.inject({
      method: "POST",
      url: "/mcp",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        origin: "http://evil.example",
      },
      payload: JSON.stringify(initialize),
    });
    expect(res.statusCode).toBe(403);
    expect(res.json().error.code).toBe("forbidden_origin");
  });

  it("a session acts as its agent: the SDK client initializes, lists tools and checks out through the service layer", async () => {
    const { client, transport } = await connect(await lh.identity("a"));
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name).sort()).toEqual(["catalog", "checkout", "status", "whoami"]);
    const catalog = await client.callTool({ name: "catalog", arguments: {} });
    expect(catalog.content).toEqual([{ type: "text", text: lh.resource }]);
    const who = await client.callTool({ name: "whoami", arguments: {} });
    expect(who.content).toEqual([{ type: "text", text: `${A} ${A}` }]);
    const out = await client.callTool({ name: "checkout", arguments: { resource: lh.resource } });
    const leaseId = (out.content as Array<{ text: string }>)[0]?.text ?? "";
    expect(leaseId, JSON.stringify(out)).toMatch(/^lse_/);
    const lease = await lh.sidecar.leaseService.getAny(leaseId);
    expect(lease.agent).toBe(A);
    expect(lease.state).toBe("active");
    const status = await client.callTool({ name: "status", arguments: { lease_id: leaseId } });
    expect(status.content).toEqual([{ type: "text", text: "active" }]);
    // Ending the session (DELETE) checks its leases in.
    await transport.terminateSession();
    const ended = await lh.sidecar.leaseService.getAny(leaseId);
    expect(ended.state).toBe("ended");
    expect(ended.end_reason).toBe("checkin");
    await client.close();
  });

  it("a spent token cannot open a second session; the same token keeps working in its own", async () => {
    const token = await lh.identity("a");
    const { client } = await connect(token);
    await expect(connect(token)).rejects.toThrow(/already used/);
    // The same token again, on the session it opened (tools/list, calls): accepted until it expires.
    expect((await client.listTools()).tools.length).toBe(4);
    await end(client);
  });

  it("a token of another agent cannot use a session; a fresh token of its own agent can", async () => {
    const { client, transport } = await connect(await lh.identity("a"));
    const sid = transport.sessionId ?? "";
    expect(sid).toMatch(/^mcp_/);
    const session = {
      "mcp-session-id": sid,
      "mcp-protocol-version": transport.protocolVersion ?? "2025-06-18",
    };
    const other = await post({ ...session, authorization: `Bearer ${await lh.identity("b")}` }, listTools);
    expect(other.status).toBe(404);
    expect(JSON.parse(other.text).error.code).toBe("not_found");
    const fresh = await post({ ...session, authorization: `Bearer ${await lh.identity("a")}` }, listTools);
    expect(fresh.status).toBe(200);
    expect(fresh.text).toContain('"whoami"');
    await end(client);
  });

  it("an expired token is refused, opening a session or inside one", async () => {
    const expired = await mintIdentityAssertion({
      keyFile: lh.keyFile("a"),
      audience: "leasehold",
      ttlSeconds: 60,
      now: () => Date.now() - 10 * 60_000,
    });
    const open = await post({ authorization: `Bearer ${expired}` }, initialize);
    expect(open.status).toBe(401);
    expect(open.headers.get("www-authenticate")).toContain("resource_metadata=");
    const { client, transport } = await connect(await lh.identity("a"));
    const inside = await post(
      {
        authorization: `Bearer ${expired}`,
        "mcp-session-id": transport.sessionId ?? "",
        "mcp-protocol-version": transport.protocolVersion ?? "2025-06-18",
      },
      listTools,
    );
    expect(inside.status).toBe(401);
    expect(inside.headers.get("www-authenticate")).toContain("resource_metadata=");
    await end(client);
  });

  it("DPoP: a token bound to a key (cnf.jkt) needs a proof by it on every request; a session opened with a proof keeps its key", async () => {
    const key = await createDpopKey();
    const other = await createDpopKey();
    const url = `${base}/mcp`;
    const bound = () =>
      mintIdentityAssertion({
        keyFile: lh.keyFile("a"),
        audience: "leasehold",
        extraClaims: { cnf: { jkt: key.jkt } },
      });
    const noProof = await post({ authorization: `Bearer ${await bound()}` }, initialize);
    expect(noProof.status).toBe(401);
    expect(JSON.parse(noProof.text).error.message).toContain("DPoP-bound");
    const wrongKey = await post(
      { authorization: `Bearer ${await bound()}`, dpop: await other.proof("POST", url) },
      initialize,
    );
    expect(wrongKey.status).toBe(401);

    // The SDK client with a fetch that signs a fresh proof for each request.
    const token = await bound();
    const transport = new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
      fetch: async (input, init) => {
        const headers = new Headers(init?.headers);
        headers.set("dpop", await key.proof(init?.method ?? "GET", String(input)));
        return fetch(input, { ...init, headers });
      },
    });
    const client = new Client({ name: "dpop", version: "1" });
    await client.connect(transport);
    clients.push(client);
    expect((await client.listTools()).tools.length).toBe(4);
    const session = {
      authorization: `Bearer ${token}`,
      "mcp-session-id": transport.sessionId ?? "",
      "mcp-protocol-version": transport.protocolVersion ?? "2025-06-18",
    };
    expect((await post(session, listTools)).status).toBe(401);
    expect((await post({ ...session, dpop: await other.proof("POST", url) }, listTools)).status).toBe(401);
    expect((await post({ ...session, dpop: await key.proof("POST", url) }, listTools)).status).toBe(200);
    // A fresh unbound token of the same agent still needs the session's key.
    const unbound = { ...session, authorization: `Bearer ${await lh.identity("a")}` };
    expect((await post(unbound, listTools)).status).toBe(401);
    expect((await post({ ...unbound, dpop: await key.proof("POST", url) }, listTools)).status).toBe(200);
    await end(client);
  });

  it("a request without a session id must be an initialize; an unknown session id is 404", async () => {
    const r = await post({ authorization: `Bearer ${await lh.identity("a")}` }, listTools);
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text).error.message).toContain("Mcp-Session-Id");
    const u = await post(
      { authorization: `Bearer ${await lh.identity("a")}`, "mcp-session-id": "mcp_unknown" },
      listTools,
    );
    expect(u.status).toBe(404);
  });

  it("caps the sessions of one agent, and DELETE ends a session", async () => {
    const mcp = lh.sidecar.mcp;
    if (!mcp) throw new Error("mcp is off");
    await waitFor("earlier sessions to end", () => mcp.count(B) === 0);
    const open = [];
    for (let i = 0; i < 3; i++) open.push(await connect(await lh.identity("b")));
    const fourth = await post({ authorization: `Bearer ${await lh.identity("b")}` }, initialize);
    expect(fourth.status).toBe(429);
    expect(JSON.parse(fourth.text).error.message).toContain("mcp.maxSessionsPerAgent");
    const first = open[0];
    if (!first) throw new Error("no session");
    const sid = first.transport.sessionId ?? "";
    await first.transport.terminateSession();
    expect(mcp.count(B)).toBe(2);
    const after = await post(
      { authorization: `Bearer ${await lh.identity("b")}`, "mcp-session-id": sid },
      listTools,
    );
    expect(after.status).toBe(404);
    const fifth = await connect(await lh.identity("b"));
    expect(mcp.count(B)).toBe(3);
    for (const s of [...open.slice(1), fifth]) await s.transport.terminateSession();
    expect(mcp.count(B)).toBe(0);
  });

  it("an idle session ends and checks in the leases it holds", async () => {
    const mcp = lh.sidecar.mcp;
    if (!mcp) throw new Error("mcp is off");
    await waitFor("the account to be available again", async () => {
      const r = await fetch(`${base}/v1/resources/${lh.resource}`, {
        headers: { authorization: `Bearer ${lh.sidecar.adminToken}` },
      });
      const body = (await r.json()) as { accounts: Array<{ state: string }> };
      return body.accounts.every((a) => a.state === "available");
    });
    const { client, transport } = await connect(await lh.identity("a"));
    const out = await client.callTool({ name: "checkout", arguments: { resource: lh.resource } });
    const leaseId = (out.content as Array<{ text: string }>)[0]?.text ?? "";
    expect(leaseId, JSON.stringify(out)).toMatch(/^lse_/);
    const sid = transport.sessionId ?? "";
    await mcp.sweep(Date.now() + 24 * 3600_000);
    const lease = await lh.sidecar.leaseService.getAny(leaseId);
    expect(lease.state).toBe("ended");
    expect(lease.end_reason).toBe("checkin");
    const after = await post(
      { authorization: `Bearer ${await lh.identity("a")}`, "mcp-session-id": sid },
      listTools,
    );
    expect(after.status).toBe(404);
  });
});
