import type { FastifyBaseLogger, FastifyInstance, FastifyRequest, RawServerDefault } from "fastify";
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { LeaseholdError } from "../errors.js";
import { describeIssues } from "../util/zod-errors.js";
import { DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT, queryAudit } from "./query.js";
import type { AuditSink } from "./types.js";

export interface AuditRouteDeps {
  /** The live audit file(s) to answer from (their rotated files are included). */
  readonly files: readonly string[] | (() => readonly string[]);
  /**
   * Throws (401/403 LeaseholdError) unless the request comes from an operator; returns the
   * operator's name for the audit record of the query.
   */
  readonly requireOperator: (req: FastifyRequest) => string;
  /** When given, each query is itself audited (event admin, scope audit_query). */
  readonly audit?: AuditSink | undefined;
  /** Clock for `since=1h`. @default Date.now */
  readonly now?: () => number;
}

const text = (max: number) => z.string().min(1).max(max);

export const auditQuerySchema = z.strictObject({
  agent: text(512).optional(),
  resource: text(63).optional(),
  /** One event, or several separated by commas. */
  event: text(200).optional(),
  lease_id: text(100).optional(),
  task_id: text(200).optional(),
  account: text(200).optional(),
  approver: text(200).optional(),
  since: text(40).optional(),
  until: text(40).optional(),
  limit: z
    .string()
    .regex(/^\d{1,4}$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().int().min(1).max(MAX_QUERY_LIMIT))
    .optional(),
  cursor: text(4096).optional(),
});

/**
 * `GET /v1/audit?agent=&resource=&event=&lease_id=&task_id=&account=&approver=&since=1h&until=&limit=&cursor=`
 * (operators only): audit records newest first, `{ records, next_cursor? }`.
 */
export function registerAuditRoutes<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>,
  deps: AuditRouteDeps,
): void {
  app.get("/v1/audit", async (req) => {
    const actor = deps.requireOperator(req);
    const parsed = auditQuerySchema.safeParse(req.query ?? {});
    if (!parsed.success)
      throw new LeaseholdError("invalid_request", describeIssues(parsed.error.issues, "query"));
    const q = parsed.data;
    const files = typeof deps.files === "function" ? deps.files() : deps.files;
    const page = await queryAudit({
      files,
      agent: q.agent,
      resource: q.resource,
      event: q.event?.split(",").filter((e) => e !== ""),
      leaseId: q.lease_id,
      taskId: q.task_id,
      account: q.account,
      approver: q.approver,
      since: q.since,
      until: q.until,
      limit: q.limit ?? DEFAULT_QUERY_LIMIT,
      cursor: q.cursor,
      now: deps.now,
    });
    if (deps.audit) {
      const filters = Object.entries(q)
        .filter(([k, v]) => v !== undefined && k !== "cursor")
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(" ");
      await deps.audit.append({
        event: "admin",
        agent: actor,
        scope: "audit_query",
        reason: filters === "" ? "no filter" : filters,
        request_id: req.id,
      });
    }
    return page;
  });
}
