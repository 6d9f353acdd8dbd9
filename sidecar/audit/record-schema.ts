import { z } from "zod";
import { AUDIT_DECISIONS, AUDIT_EVENTS, type AuditEvent, type AuditScope } from "./types.js";

const EVENTS = Object.keys(AUDIT_EVENTS) as [AuditEvent, ...AuditEvent[]];
const SCOPES = [...new Set(Object.values(AUDIT_EVENTS).flatMap((e) => e.scopes))] as [
  AuditScope,
  ...AuditScope[],
];

/** Which scopes each event carries, as the schema's description says it. */
function scopesByEvent(): string {
  return EVENTS.filter((e) => AUDIT_EVENTS[e].scopes.length > 0)
    .map((e) => `${e}: ${AUDIT_EVENTS[e].scopes.join(", ")}`)
    .join("; ");
}

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex digits");

/** A local caller (issue 22) as a record shows it. */
const auditCaller = z.strictObject({
  attested: z.boolean().describe("Whether the kernel could tell who the caller is."),
  uid: z.number().int().min(0).optional().describe("The caller's user id."),
  pid: z.number().int().min(0).optional().describe("The caller's process id."),
  start_time: z
    .string()
    .optional()
    .describe("The process's start time (clock ticks since boot), so a reused pid is told apart."),
  exe_sha256: z.string().optional().describe("SHA-256 (hex) of the caller's executable."),
  cgroup: z.string().optional().describe("The caller's cgroup v2 path."),
});

/**
 * The audit record, field by field. It is strict: a record with a field not listed here is
 * invalid, so nothing (a password, a token) can ride along in an unexpected key.
 * `audit-record.schema.json` is this schema exported as JSON Schema (a test keeps them equal).
 */
export const auditRecordSchema = z
  .strictObject({
    time: z.iso.datetime().describe("When the event was appended, RFC 3339 UTC."),
    event: z.enum(EVENTS).describe("What happened."),
    agent: z
      .string()
      .min(1)
      .optional()
      .describe("Who acted: the agent's SPIFFE ID, or the operator for admin actions."),
    agent_chain: z
      .array(z.string().min(1))
      .optional()
      .describe(
        "Delegators, nearest first (who delegated to the agent, then who delegated to that one); empty when the agent acted for itself.",
      ),
    approver: z
      .string()
      .min(1)
      .optional()
      .describe("The human who approved the checkout behind this record."),
    task_id: z.string().optional().describe("The task the agent named at checkout."),
    intent: z
      .string()
      .optional()
      .describe("The intent's action (read, write, ...), or a tool call's action."),
    tool: z.string().optional().describe("The tool the agent uses (psql, ...)."),
    scope: z
      .enum(SCOPES)
      .optional()
      .describe(
        `What the record covers: the policy action decided, or a sub-kind of the event. By event: ${scopesByEvent()}.`,
      ),
    resource: z.string().optional().describe("The registered resource."),
    account: z.string().optional().describe("The account of the resource."),
    lease_id: z.string().optional().describe("The lease the record belongs to."),
    decision: z.enum(AUDIT_DECISIONS).optional().describe("The policy decision."),
    policies: z.array(z.string()).optional().describe("Ids of the policies that decided."),
    reason: z
      .string()
      .optional()
      .describe("Why, as free text: a denial's reason, a revocation reason, an error message."),
    approval_id: z
      .string()
      .min(1)
      .optional()
      .describe("The approval a decision is about (scopes approval_requested, approved, denied)."),
    trust_kind: z
      .enum(["agents", "issuer"])
      .optional()
      .describe(
        "How the acting identity was verified: agents (its key in the operator's trust bundle) or issuer (a trusted issuer's token).",
      ),
    request_id: z.string().optional().describe("The HTTP request (x-request-id) that caused the record."),
    target: z.string().optional().describe("What a tool call acted on, as the agent reported it."),
    digest: z.string().optional().describe("SHA-256 of a tool call's arguments, as the agent reported it."),
    client: z
      .string()
      .optional()
      .describe("The client a tool call came through (an MCP client's name), as the agent reported it."),
    lease_count: z.number().int().min(0).optional().describe("How many leases a task teardown ended."),
    bytes_in: z.number().int().min(0).optional().describe("Proxy sessions: bytes from the client."),
    bytes_out: z.number().int().min(0).optional().describe("Proxy sessions: bytes to the client."),
    duration_ms: z.number().int().min(0).optional().describe("Proxy sessions: how long the session lasted."),
    database: z
      .string()
      .optional()
      .describe("Proxy sessions: the database the session opened, or was refused (PostgreSQL)."),
    caller: auditCaller
      .optional()
      .describe("caller_mismatch: the local caller that made the request, as attested."),
    bound_caller: auditCaller
      .optional()
      .describe("caller_mismatch: the local caller the lease is bound to, as attested at checkout."),
    statement: z.string().optional().describe("Proxy statement audit: the statement text."),
    truncated: z.boolean().optional().describe("Proxy statement audit: whether the statement was cut."),
    dropped: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe(
        "How many statement records were dropped, unwritten, before this one (an audit_dropped record).",
      ),
    sidecar: z.string().min(1).describe("The sidecar instance that wrote the record."),
    seq: z.number().int().min(0).describe("Position in this chain, from 0, without gaps."),
    prev: hex64.describe("SHA-256 of the previous record's canonical JSON; 64 zeros for the first."),
    hash: hex64.describe("SHA-256 of this record's canonical JSON without hash and hmac."),
    hmac: hex64.optional().describe("HMAC-SHA256 of hash under the audit key, when one is configured."),
  })
  .meta({
    title: "leasehold audit record",
    description:
      "One line of leasehold's hash-chained audit trail (JSONL). Canonical JSON = keys sorted at every level, no whitespace.",
  });

export type AuditRecordShape = z.output<typeof auditRecordSchema>;

/** The record schema as JSON Schema (draft 2020-12), as written to audit-record.schema.json. */
export function auditRecordJsonSchema(): Record<string, unknown> {
  return {
    $id: "urn:leasehold:schema:audit-record:v1",
    ...z.toJSONSchema(auditRecordSchema),
  };
}

/** Checks one record against the schema; the problems name the field and the rule, never a value. */
export function checkAuditRecord(value: unknown): { ok: true } | { ok: false; problems: string[] } {
  const r = auditRecordSchema.safeParse(value);
  if (r.success) return { ok: true };
  return {
    ok: false,
    problems: r.error.issues.map((i) =>
      i.code === "unrecognized_keys"
        ? `unknown field(s) ${i.keys.join(", ")}`
        : `${i.path.map(String).join(".") || "(record)"}: ${i.message}`,
    ),
  };
}

/**
 * The event table of docs/audit.md (between `<!-- generated:audit-events -->` markers), rendered
 * from `AUDIT_EVENTS`: every event, the scopes it carries and what it means.
 */
export function auditEventsMarkdown(): string {
  const rows = EVENTS.map((e) => {
    const { scopes, about } = AUDIT_EVENTS[e];
    const scopeCell = scopes.length === 0 ? "—" : scopes.map((s) => `\`${s}\``).join(", ");
    return `| \`${e}\` | ${scopeCell} | ${about} |`;
  });
  return ["| event | `scope` | meaning |", "|---|---|---|", ...rows].join("\n");
}
