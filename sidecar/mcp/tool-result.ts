import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { Lease } from "../client/types.js";
import type { McpResourceInfo } from "./backend.js";
import type { SessionKind } from "./session.js";
import { toolErrorText } from "./tool-errors.js";

/** Runs a tool's body: its result, or `isError` with what the model may do next. */
export async function run(body: () => Promise<CallToolResult>, leaseId?: string): Promise<CallToolResult> {
  try {
    return await body();
  } catch (err) {
    return { isError: true, content: [{ type: "text", text: toolErrorText(err, leaseId) }] };
  }
}

/** A result: structured, and the same JSON as text for clients that read only text. */
export function ok(structured: object): CallToolResult {
  return {
    structuredContent: structured as Record<string, unknown>,
    content: [{ type: "text", text: JSON.stringify(structured) }],
  };
}

export function resourceView(r: McpResourceInfo) {
  return {
    name: r.name,
    adapter: r.adapter,
    ...(r.description ? { description: r.description } : {}),
    groups: [...r.groups],
    session: r.session,
  };
}

/** A lease as the model sees it: never its token. */
export function leaseView(l: Lease, session: SessionKind) {
  return {
    lease_id: l.id,
    resource: l.resource,
    account: l.account,
    state: l.state,
    task_id: l.task.id,
    intent: l.intent.action,
    ...(l.intent.tool ? { tool: l.intent.tool } : {}),
    ...(l.approver ? { approver: l.approver } : {}),
    issued_at: l.issued_at,
    expires_at: l.expires_at,
    max_expires_at: l.max_expires_at,
    ...(l.ended_at ? { ended_at: l.ended_at } : {}),
    ...(l.end_reason ? { end_reason: l.end_reason } : {}),
    session,
  };
}
