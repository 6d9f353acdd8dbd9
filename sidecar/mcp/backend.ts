import type { Lease, ToolCall } from "../client/types.js";

/*
 * What leasehold's MCP tools need from the sidecar. Two implementations: over the HTTP API with
 * the agent's key (`leasehold mcp` on stdio, `sdk-backend.ts`), and in the sidecar's own process
 * for `POST /mcp` (`service-backend.ts`), acting as the identity the request proved. Lease tokens
 * and passwords stay in the process that holds the backend: no tool result ever carries one.
 */

/** A resource as the model sees it in `list_resources`. */
export interface McpResourceInfo {
  readonly name: string;
  /** The adapter's id: `postgres`, `mysql`, `redis`, `ldap`, `ssh`, `http-basic`, … */
  readonly adapter: string;
  readonly description?: string | undefined;
  readonly groups: readonly string[];
  /** `proxy`: sessions go through the sidecar's listener (the password is never revealed); `credential`: the password is revealed to the MCP server's process. */
  readonly session: "proxy" | "credential";
}

export interface McpCheckoutRequest {
  readonly resource: string;
  readonly task: { readonly id: string; readonly description?: string | undefined };
  readonly intent: { readonly action: string; readonly tool?: string | undefined };
  readonly ttl?: number | undefined;
  /** Check out with an unbound (Bearer) token so the listener accepts it. */
  readonly forProxy: boolean;
}

export interface McpCheckoutHooks {
  /** Called once the checkout waits for a human approval, then at each poll while it waits. */
  readonly onPending?: ((approval: { readonly id: string; readonly status: string }) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** A tool call as the audit trail records it: `client` is the MCP client's name from `initialize`. */
export type McpToolCall = ToolCall;

/** A held lease: its token stays inside. */
export interface McpLeaseHandle {
  /** The lease as last seen (after checkout, renew, status or checkin). */
  readonly lease: Lease;
  /** The listener login (user = lease id, password = lease token), when the resource has a listener and the token is Bearer. */
  proxyLogin(): { host: string; port: number; user: string; password: string } | undefined;
  /** Reveals the password (policy decides; refused for `reveal: false` resources). */
  credential(): Promise<{
    username: string;
    password: string;
    connection: Readonly<Record<string, unknown>>;
  }>;
  /** Reads the lease again (`GET /v1/leases/{id}` with the lease token). */
  status(): Promise<Lease>;
  renew(ttl?: number): Promise<Lease>;
  /** Checks the lease in; the account's password is rotated next. */
  checkin(): Promise<void>;
  reportToolCall(call: McpToolCall): Promise<void>;
}

export interface McpBackend {
  /** The resources this agent could check out, as policy sees it. */
  listResources(signal?: AbortSignal): Promise<McpResourceInfo[]>;
  checkout(req: McpCheckoutRequest, hooks?: McpCheckoutHooks): Promise<McpLeaseHandle>;
  /** A tool call made without a lease (listing, a refused checkout): audited as the agent's. */
  reportToolCall(call: McpToolCall): Promise<void>;
}
