import type { FastifyBaseLogger, FastifyRequest } from "fastify";
import { z } from "zod";
import { plainText } from "../util/text.js";
import { operatorCaller } from "../http/auth.js";
import { type RouteApp, registerRoutes } from "../http/register.js";
import { routeDeclarer } from "../http/route.js";
import { auditPageSchema } from "../openapi/response-schemas.js";
import { DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT, queryAudit, unknownEventProblem } from "./query.js";
import type { AuditSink } from "./types.js";

/** What the handler of `GET /v1/audit` takes. */
export interface AuditHandlerDeps {
  /** The live audit file(s) to answer from (their rotated files are included). */
  readonly files: readonly string[] | (() => readonly string[]);
  /** When given, each query is itself audited (event admin, scope audit_query). */
  readonly audit?: AuditSink | undefined;
  /** Clock for `since=1h`. @default Date.now */
  readonly now?: () => number;
}

export interface AuditRouteDeps extends AuditHandlerDeps {
  /**
   * Throws (401/403 LeaseholdError) unless the request comes from an operator; returns the
   * operator's name for the audit record of the query.
   */
  readonly requireOperator: (req: FastifyRequest) => string;
}

const text = (max: number) => plainText(max, 1);

/** The names of an `event=` filter: comma separated, empty ones ignored. */
const eventNames = (v: string): string[] => v.split(",").filter((e) => e !== "");

export const auditQuerySchema = z.strictObject({
  agent: text(512).optional(),
  resource: text(63).optional(),
  /** One event, or several separated by commas; each must be one of `AUDIT_EVENTS`. */
  event: text(200)
    .refine((v) => unknownEventProblem(eventNames(v)) === undefined, {
      error: (issue) => unknownEventProblem(eventNames(String(issue.input))),
    })
    .optional(),
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
export const auditQueryRoute = routeDeclarer<AuditHandlerDeps>("audit")({
  method: "GET",
  path: "/v1/audit",
  operationId: "queryAudit",
  tag: "operations",
  summary: "Query the audit trail, newest first (operators; the query is itself audited)",
  auth: "admin",
  query: auditQuerySchema,
  responses: { 200: { description: "one page of audit records", schema: auditPageSchema } },
  errors: [],
  handle: async ({ caller, query: q, req }, deps) => {
    const files = typeof deps.files === "function" ? deps.files() : deps.files;
    const page = await queryAudit({
      files,
      agent: q.agent,
      resource: q.resource,
      event: q.event === undefined ? undefined : eventNames(q.event),
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
        agent: caller.operator.name,
        scope: "audit_query",
        reason: filters === "" ? "no filter" : filters,
        request_id: req.id,
      });
    }
    return page;
  },
});

/**
 * Adds `GET /v1/audit` to an app whose operator check is `deps.requireOperator` (buildApp
 * registers the same route with its own auth step).
 */
export function registerAuditRoutes<L extends FastifyBaseLogger>(
  app: RouteApp<L>,
  deps: AuditRouteDeps,
): void {
  registerRoutes(app, [auditQueryRoute], deps, async (_auth, req) =>
    operatorCaller({ name: deps.requireOperator(req), admin: true, attributes: {} }, { requestId: req.id }),
  );
}
