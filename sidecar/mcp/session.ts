import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { LeaseholdClientError } from "../client/errors.js";
import type { McpBackend, McpLeaseHandle, McpResourceInfo, McpToolCall } from "./backend.js";
import { argumentsDigest } from "./arguments-digest.js";
import type { RunnerLogin } from "./runners/login.js";
import { UnknownLeaseError } from "./tool-errors.js";

/** How a lease's sessions go: through the sidecar's listener, or with the revealed password. */
export type SessionKind = "proxy" | "credential";

/** A lease this MCP session holds: the handle (its token inside) and, once used, its login. */
export interface Held {
  readonly handle: McpLeaseHandle;
  readonly session: SessionKind;
  readonly adapter: string | undefined;
  login?: RunnerLogin;
}

/**
 * One MCP session's state, shared by its tools: the leases it holds (their tokens and revealed
 * passwords stay here), the catalog as last listed, and how each tool call is recorded — one
 * `tool_call` audit record per call, with the tool, the digest of its arguments and the MCP
 * client's name from `initialize`.
 */
export class McpSession {
  readonly held = new Map<string, Held>();
  private catalog: McpResourceInfo[] | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    readonly backend: McpBackend,
    private readonly server: McpServer,
    readonly log: (message: string) => void,
  ) {}

  /** A tool call as the audit trail records it. */
  call(tool: string, action: string, target: string | undefined, args: unknown): McpToolCall {
    const client = this.server.server.getClientVersion()?.name;
    return {
      tool,
      action,
      ...(target === undefined ? {} : { target }),
      digest: argumentsDigest(args),
      ...(client === undefined ? {} : { client }),
    };
  }

  /** A leaseless call: recorded as the agent's; a failure to record is logged, not the model's concern. */
  async recordLeaseless(
    tool: string,
    action: string,
    target: string | undefined,
    args: unknown,
  ): Promise<void> {
    try {
      await this.backend.reportToolCall(this.call(tool, action, target, args));
    } catch (err) {
      this.log(`tool call ${tool} not recorded: ${messageOf(err)}`);
    }
  }

  /**
   * A call on a lease: recorded on the lease (policy decides) before it runs; a refusal stops
   * it. A call that names no lease this session holds, or one that has ended, is recorded as
   * the agent's instead, so every tool call leaves one record.
   */
  async recordOn(leaseId: string, tool: string, args: unknown): Promise<Held> {
    const h = this.held.get(leaseId);
    if (h === undefined) {
      await this.recordLeaseless(tool, "unknown-lease", undefined, args);
      throw new UnknownLeaseError(leaseId);
    }
    const { intent, resource } = h.handle.lease;
    try {
      await h.handle.reportToolCall(this.call(tool, intent.action, resource, args));
    } catch (err) {
      if (isEnded(err)) await this.recordLeaseless(tool, intent.action, resource, args);
      throw err;
    }
    return h;
  }

  /** The resources the agent may check out, listed now (and kept for `catalogEntry`). */
  async resources(signal?: AbortSignal): Promise<McpResourceInfo[]> {
    this.catalog = await this.backend.listResources(signal);
    return this.catalog;
  }

  /** The catalog's entry of `name`: listed before, or listed now (no entry when listing fails). */
  async catalogEntry(name: string, signal: AbortSignal): Promise<McpResourceInfo | undefined> {
    const known = this.catalog?.find((r) => r.name === name);
    if (known !== undefined) return known;
    try {
      return (await this.resources(signal)).find((r) => r.name === name);
    } catch (err) {
      this.log(`resource list unavailable: ${messageOf(err)}`);
      return undefined;
    }
  }

  /** How the runners log in for a lease: the listener's login, or the revealed password (kept). */
  async loginOf(h: Held): Promise<RunnerLogin> {
    if (h.login) return h.login;
    const p = h.handle.proxyLogin();
    if (p !== undefined) {
      h.login = { kind: "proxy", host: p.host, port: p.port, user: p.user, password: p.password };
    } else {
      const c = await h.handle.credential();
      h.login = { kind: "credential", username: c.username, password: c.password, connection: c.connection };
    }
    return h.login;
  }

  /** Checks in every lease held (once; later calls wait for the same). */
  checkinAll(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(
        [...this.held.entries()].map(async ([id, h]) => {
          try {
            await h.handle.checkin();
            this.held.delete(id);
            this.log(`lease ${id} checked in at exit`);
          } catch (err) {
            this.log(`lease ${id} not checked in at exit (it ends at its expiry): ${messageOf(err)}`);
          }
        }),
      );
    })();
    return this.closing;
  }
}

/** True for a lease the sidecar has ended already (expired or revoked). */
export function isEnded(err: unknown): boolean {
  return (
    err instanceof LeaseholdClientError && (err.code === "lease_expired" || err.code === "lease_revoked")
  );
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
