import { z } from "zod";
import { LeaseholdError } from "../errors.js";
import {
  approvalDecisionSchema,
  approvalListQuery,
  approvalParam,
  DEFAULT_APPROVAL_PAGE,
  idParam,
  listQuery,
  revokeAgentSchema,
} from "../openapi/request-schemas.js";
import {
  adapterListSchema,
  approvalListSchema,
  approvalOneSchema,
  leaseListSchema,
  leaseManySchema,
  leaseOneSchema,
} from "../openapi/response-schemas.js";
import { type Operator, type RevokeGate, revokeSchema } from "../service/index.js";
import { appRoute } from "./app-deps.js";
import type { OperatorCaller } from "./route.js";

/* Operators' routes on leases and approvals: the admin token, or an identity policy lets act. */

export const listLeasesRoute = appRoute({
  method: "GET",
  path: "/v1/leases",
  operationId: "listLeases",
  tag: "leases",
  summary: "List active leases (operators), one page at a time",
  description:
    "A page holds at most `limit` leases (default 500, at most 1000), by resource name and soonest expiry first within a resource; the page itself is sorted soonest expiry first. `next_cursor`, absent on the last page, is the `cursor` of the next page. A page may hold fewer than `limit` leases (filtering by agent looks at a bounded number of leases per page; an operator identity sees the resources policy lets it act on): follow `next_cursor` until it is absent. One Redis round trip per page.",
  auth: "operator-revoke",
  query: listQuery,
  responses: { 200: { description: "one page of active leases", schema: leaseListSchema } },
  errors: ["invalid_request"],
  handle: async ({ caller, query }, d) => {
    const page = await d.leases.list(query);
    const leases = await caller.visible(page.leases, (l) => l.resource);
    return page.next_cursor ? { leases, next_cursor: page.next_cursor } : { leases };
  },
});

export const revokeLeaseRoute = appRoute({
  method: "POST",
  path: "/v1/leases/:id/revoke",
  operationId: "revokeLease",
  tag: "leases",
  summary: "Revoke a lease now (operators); its token is refused on next use",
  auth: "operator-revoke",
  params: idParam,
  body: revokeSchema,
  bodyOptional: true,
  responses: { 202: { description: "the ended lease; rotation follows", schema: leaseOneSchema } },
  errors: ["not_found"],
  resource: async ({ params }, d) => (await d.leases.getAny(params.id)).resource,
  handle: ({ caller, params, body, meta }, d) =>
    d.leases.revoke(params.id, body.reason, caller.operator.name, meta),
});

/**
 * What an operator identity must pass before its revocation of several leases touches any: the
 * revoke action decided on every resource they are on (all or nothing). None for the admin token.
 */
export function revokeGate(caller: OperatorCaller): RevokeGate | undefined {
  if (caller.operator.admin) return undefined;
  return async (resources) => {
    for (const resource of resources) await caller.require(resource);
  };
}

export const revokeAgentRoute = appRoute({
  method: "POST",
  path: "/v1/agents/revoke",
  operationId: "revokeAgent",
  tag: "leases",
  summary: "Revoke every active lease of one agent (operators)",
  auth: "operator-revoke",
  body: revokeAgentSchema,
  responses: { 202: { description: "the leases ended", schema: leaseManySchema } },
  errors: [],
  handle: ({ caller, body, meta }, d) =>
    d.leases.revokeAgent(body.agent, body.reason, caller.operator.name, meta, revokeGate(caller)),
});

export const listApprovalsRoute = appRoute({
  method: "GET",
  path: "/v1/approvals",
  operationId: "listApprovals",
  tag: "approvals",
  summary: "List approval requests of the last day, newest first, a page at a time (operators)",
  description:
    "`total` counts every approval that matches (and that the caller may see); `next`, when present, is the `cursor` of the following page. Approving and denying go by id, whatever a list holds.",
  auth: "operator-approve",
  query: approvalListQuery,
  responses: { 200: { description: "one page of approval requests", schema: approvalListSchema } },
  errors: ["not_found"],
  handle: ({ caller, query }, d) =>
    d.leases.listApprovals(
      query.status,
      { limit: query.limit ?? DEFAULT_APPROVAL_PAGE, cursor: query.cursor },
      (rows) => caller.visible(rows, (r) => r.resource),
    ),
});

/**
 * The approver recorded on a decision: an operator identity names itself; only the admin token
 * (shared by whoever can read its file) may say which human is behind it.
 */
function approverName(op: Operator, claimed: string | undefined): string {
  if (op.admin) return claimed ?? op.name;
  if (claimed !== undefined && claimed !== op.name) {
    throw new LeaseholdError(
      "invalid_request",
      "approver: an identity token names its own approver; only the admin token may set it",
    );
  }
  return op.name;
}

function decisionRoute(approve: boolean) {
  return appRoute({
    method: "POST",
    path: approve ? "/v1/approvals/:id/approve" : "/v1/approvals/:id/deny",
    operationId: approve ? "approve" : "deny",
    tag: "approvals",
    summary: `${approve ? "Approve" : "Deny"} a pending checkout (operators)`,
    auth: "operator-approve",
    params: approvalParam,
    body: approvalDecisionSchema,
    bodyOptional: true,
    responses: { 200: { description: "the decided approval", schema: approvalOneSchema } },
    errors: ["not_found", "conflict"],
    // By id, never through a list: a flood of requests cannot hide a real one from its approver.
    resource: ({ params }, d) => d.leases.approvalResource(params.id),
    handle: ({ caller, params, body, meta }, d) =>
      d.leases.decideApproval(
        params.id,
        approve,
        approverName(caller.operator, body.approver),
        body.reason,
        meta,
      ),
  });
}

export const approveRoute = decisionRoute(true);
export const denyRoute = decisionRoute(false);

export const listAdaptersRoute = appRoute({
  method: "GET",
  path: "/v1/adapters",
  operationId: "listAdapters",
  tag: "resources",
  summary: "Adapter types with the JSON Schema of their connection settings",
  auth: "operator",
  responses: { 200: { description: "loaded adapters", schema: adapterListSchema } },
  // An identity that policy lets take no operator action anywhere is refused (403).
  errors: ["policy_denied"],
  // Adapter types and their config schemas: any operator or DBA identity may read them.
  handle: (_ctx, d) => ({
    adapters: [...d.adapters.values()].map((a) => ({
      id: a.id,
      description: a.description,
      config: z.toJSONSchema(a.config, { unrepresentable: "any" }),
      constraints: a.constraints,
    })),
  }),
});
