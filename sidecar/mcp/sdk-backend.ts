import { createClient } from "../client/client.js";
import { clientOptionsFromEnv } from "../client/env.js";
import type { ClientOptions, LeaseHandle, ToolCall } from "../client/types.js";
import type { McpBackend, McpLeaseHandle, McpToolCall } from "./backend.js";

/**
 * The MCP tools' backend for `leasehold mcp`: the agent SDK over the sidecar's HTTP API, with the
 * agent's key (`LEASEHOLD_ADDR` / `LEASEHOLD_SOCKET` and `LEASEHOLD_AGENT_KEY` fill in what
 * `opts` leaves out). A lease for a resource without a listener is bound to this process's DPoP
 * key; one for a listener gets a Bearer token (listeners accept no other). Tokens and revealed
 * passwords stay in this process.
 */
export function createSdkBackend(opts: ClientOptions = {}): McpBackend {
  const client = createClient(clientOptionsFromEnv(opts));
  return {
    async listResources(signal) {
      const list = await client.resources(signal === undefined ? {} : { signal });
      return list.map((r) => ({
        name: r.name,
        adapter: r.adapter,
        ...(r.description === undefined ? {} : { description: r.description }),
        groups: [...r.groups],
        session: r.session,
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
        dpop: !req.forProxy,
        ...(hooks.signal === undefined ? {} : { signal: hooks.signal }),
        ...(hooks.onPending === undefined ? {} : { onPending: hooks.onPending, onPoll: hooks.onPending }),
      });
      return mcpHandle(handle);
    },

    reportToolCall: (call) => client.reportToolCall(sent(call)),
  };
}

/** A tool call as the SDK sends it (an absent client name is left out). */
function sent(call: McpToolCall): ToolCall {
  const { client, ...rest } = call;
  return client === undefined ? rest : { ...rest, client };
}

function mcpHandle(h: LeaseHandle): McpLeaseHandle {
  return {
    get lease() {
      return h.lease;
    },
    proxyLogin: () => (h.proxy === undefined ? undefined : h.proxyLogin()),
    async credential() {
      const c = await h.credential();
      return { username: c.username, password: c.password, connection: c.connection };
    },
    status: () => h.status(),
    renew: (ttl) => h.renew(ttl),
    checkin: () => h.checkin(),
    reportToolCall: (call) => h.reportToolCall(sent(call)),
  };
}
