import { createAgentSession } from "../client/agent-session.js";
import { createClient } from "../client/client.js";
import { clientOptionsFromEnv } from "../client/env.js";
import { answerError } from "../client/transport.js";
import type { ClientOptions, Lease, LeaseHandle, ToolCall } from "../client/types.js";
import type { McpBackend, McpLeaseHandle, McpResourceInfo, McpToolCall } from "./backend.js";

/*
 * The MCP tools' backend for `leasehold mcp`: the agent SDK over the sidecar's HTTP API, with the
 * agent's key. Tokens and revealed passwords stay in this process.
 *
 * TODO(h-api): `client.resources()` (GET /v1/catalog), `handle.status()`, `client.reportToolCall()`
 * (POST /v1/tool-calls) and the `client` field of a tool call are being added to the SDK; until
 * they are in main, the stand-ins below call the routes through a session of their own, every
 * lease is checked out with a Bearer token (so that session can read it), and `client` is left
 * out of what is sent (the route refuses unknown fields).
 */
export function createSdkBackend(opts: ClientOptions = {}): McpBackend {
  const options = clientOptionsFromEnv(opts);
  const client = createClient(options);
  // TODO(h-api): drop with the stand-ins.
  const standIn = createAgentSession(options);

  return {
    async listResources(signal) {
      // TODO(h-api): return (await client.resources({ signal })).map(...)
      const res = await standIn.asAgent("GET", "/v1/catalog", undefined, undefined, 0, signal);
      if (res.status !== 200) throw answerError(res);
      return ((res.json.resources ?? []) as McpResourceInfo[]).map((r) => ({
        name: r.name,
        adapter: r.adapter,
        ...(r.description === undefined ? {} : { description: r.description }),
        groups: r.groups ?? [],
        session: r.session === "proxy" ? "proxy" : "credential",
      }));
    },

    async checkout(req, hooks = {}) {
      const handle = await client.checkout(req.resource, {
        task: {
          id: req.task.id,
          ...(req.task.description === undefined ? {} : { description: req.task.description }),
        },
        intent: {
          action: req.intent.action,
          ...(req.intent.tool === undefined ? {} : { tool: req.intent.tool }),
        },
        ...(req.ttl === undefined ? {} : { ttl: req.ttl }),
        // TODO(h-api): dpop: !req.forProxy (the stand-in status() reads the lease with its own session).
        dpop: false,
        ...(hooks.signal === undefined ? {} : { signal: hooks.signal }),
        ...(hooks.onPending === undefined ? {} : { onPending: hooks.onPending }),
      });
      return mcpHandle(handle, async (id) => {
        // TODO(h-api): return handle.status()
        const res = await standIn.asHolder(
          { lease: handle.lease, token: handle.leaseToken(), tokenType: handle.tokenType },
          "GET",
          `/v1/leases/${encodeURIComponent(id)}`,
        );
        if (res.status !== 200) throw answerError(res);
        return res.json as unknown as Lease;
      });
    },

    async reportToolCall(call) {
      // TODO(h-api): await client.reportToolCall(call)
      const res = await standIn.asAgent("POST", "/v1/tool-calls", sent(call), undefined);
      if (res.status !== 202) throw answerError(res);
    },
  };
}

/** A tool call as the sidecar takes it today. TODO(h-api): send `client` too. */
function sent(call: McpToolCall): ToolCall {
  const { client: _client, ...rest } = call;
  return rest;
}

function mcpHandle(h: LeaseHandle, status: (id: string) => Promise<Lease>): McpLeaseHandle {
  let last = h.lease;
  return {
    get lease() {
      return last;
    },
    proxyLogin: () => (h.proxy === undefined ? undefined : h.proxyLogin()),
    async credential() {
      const c = await h.credential();
      return { username: c.username, password: c.password, connection: c.connection };
    },
    async status() {
      last = await status(last.id);
      return last;
    },
    async renew(ttl) {
      last = await h.renew(ttl);
      return last;
    },
    async checkin() {
      await h.checkin();
      last = h.lease;
    },
    reportToolCall: (call) => h.reportToolCall(sent(call)),
  };
}
