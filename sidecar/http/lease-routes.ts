import {
  acceptedSchema,
  approvalPollSchema,
  catalogSchema,
  checkoutCreatedSchema,
  checkoutPendingSchema,
  credentialSchema,
  leaseOneSchema,
  leaseSchema,
} from "../openapi/response-schemas.js";
import { approvalParam, idParam } from "../openapi/request-schemas.js";
import type { ErrorCode } from "../errors.js";
import { checkoutSchema, renewSchema, toolCallSchema } from "../service/index.js";
import { appRoute } from "./app-deps.js";
import { delegationToken } from "./credentials.js";

/*
 * The routes agents call: their catalog, checkout, approval polling and tool calls without a lease
 * with their identity JWT, then the lease's own routes with its lease token.
 */

const LEASE_USE: readonly ErrorCode[] = ["lease_expired", "lease_revoked", "caller_mismatch"];

export const checkoutRoute = appRoute({
  method: "POST",
  path: "/v1/checkout",
  operationId: "checkout",
  tag: "agents",
  summary: "Check out one account of a resource for one task and intent",
  description:
    "Policy decides at request time. 201 with the lease and its token; 202 with a pending approval when policy wants a human; 409 resource_busy (with retry_after) when every account is leased and `wait` ran out.",
  auth: "identity",
  body: checkoutSchema,
  responses: {
    201: { description: "the lease and its lease token", schema: checkoutCreatedSchema },
    202: {
      description: "policy wants a human: poll GET /v1/approvals/{id}",
      schema: checkoutPendingSchema,
    },
  },
  errors: ["policy_denied", "not_found", "resource_busy", "conflict"],
  handle: async ({ caller, body, meta, reply, req }, d) => {
    const out = await d.leases.checkout(caller.presented, body, meta, delegationToken(req));
    reply.status("approval" in out ? 202 : 201);
    return out;
  },
});

export const catalogRoute = appRoute({
  method: "GET",
  path: "/v1/catalog",
  operationId: "catalog",
  tag: "agents",
  summary: "The resources this agent could check out, as policy sees it",
  description:
    "Each registered resource unless policy denies its checkout to this agent whatever the request would carry (Cedar partial evaluation: the agent and its verified attributes, its delegation (`delegated_by`, `on_behalf_of`), the resource and its groups known; every field the checkout decides unknown), or a delegation's scope leaves it out. Resources that need a human approval are listed. A resource whose password is never revealed (`reveal: false`) is listed only when this sidecar runs its listener (`session: proxy`): there is no other way to use it here. `description` is the DBA's text, shown as is: data for a model, not instructions. The list may be up to 5 s old for registrations made on another sidecar. A read: the identity JWT's one-time jti is not spent; nothing is audited (an MCP client reports its listing as a tool call). Each agent may read it `limits.catalogReadsPerMinute` times a minute, counted before its DPoP proof or caller pin is checked: 429 `rate_limited` beyond.",
  auth: "identity",
  responses: { 200: { description: "the resources", schema: catalogSchema } },
  errors: ["rate_limited"],
  handle: ({ caller, meta, req }, d) => d.leases.catalog(caller.presented, meta, delegationToken(req)),
});

export const getLeaseRoute = appRoute({
  method: "GET",
  path: "/v1/leases/:id",
  operationId: "getLease",
  tag: "leases",
  summary: "Read a lease (its holder with the lease token, or an operator)",
  auth: "lease-or-admin",
  params: idParam,
  responses: { 200: { description: "the lease", schema: leaseSchema } },
  errors: [...LEASE_USE, "not_found"],
  handle: ({ caller, params, meta }, d) =>
    caller.kind === "operator"
      ? d.leases.getAny(params.id)
      : d.leases.getOwn(caller.presented, params.id, meta),
});

export const credentialRoute = appRoute({
  method: "GET",
  path: "/v1/leases/:id/credential",
  operationId: "revealCredential",
  tag: "leases",
  summary: "Reveal the leased account's password",
  description:
    "Policy decides the reveal; a resource registered with `reveal: false` never answers here (use its proxy). Audited; Cache-Control: no-store.",
  auth: "lease",
  params: idParam,
  responses: { 200: { description: "the credential", schema: credentialSchema } },
  errors: [...LEASE_USE, "policy_denied", "not_found", "conflict"],
  handle: ({ caller, params, meta }, d) => d.leases.credential(caller.presented, params.id, meta),
});

export const renewRoute = appRoute({
  method: "POST",
  path: "/v1/leases/:id/renew",
  operationId: "renewLease",
  tag: "leases",
  summary: "Extend a lease (never past max_expires_at)",
  auth: "lease",
  params: idParam,
  body: renewSchema,
  bodyOptional: true,
  responses: { 200: { description: "the renewed lease", schema: leaseOneSchema } },
  errors: [...LEASE_USE, "policy_denied", "not_found"],
  handle: ({ caller, params, body, meta }, d) => d.leases.renew(caller.presented, params.id, body, meta),
});

export const toolCallRoute = appRoute({
  method: "POST",
  path: "/v1/leases/:id/tool-calls",
  operationId: "recordToolCall",
  tag: "leases",
  summary: "Record one tool call made with the lease (policy decides, then audited)",
  auth: "lease",
  params: idParam,
  body: toolCallSchema,
  responses: { 202: { description: "recorded", schema: acceptedSchema } },
  errors: [...LEASE_USE, "policy_denied", "not_found"],
  handle: async ({ caller, params, body, meta }, d) => {
    await d.leases.toolCall(caller.presented, params.id, body, meta);
    return { accepted: true };
  },
});

export const agentToolCallRoute = appRoute({
  method: "POST",
  path: "/v1/tool-calls",
  operationId: "recordAgentToolCall",
  tag: "agents",
  summary: "Record one tool call made without a lease (audited; no policy decision)",
  description:
    "For a tool call that uses no lease (an MCP client listing resources, a checkout that was refused): one `tool_call` audit record of the agent and its delegation chain, without a lease. There is no resource to decide on, so policy is not asked. The identity JWT's one-time jti is spent; each agent may report `limits.toolCallsPerMinute` a minute, counted before its DPoP proof or caller pin is checked: 429 `rate_limited` beyond. Refused (503 `upstream_unavailable`) while the sidecar is fenced or its audit log cannot be written, as checkouts are.",
  auth: "identity",
  body: toolCallSchema,
  responses: { 202: { description: "recorded", schema: acceptedSchema } },
  errors: ["rate_limited"],
  handle: async ({ caller, body, meta, req }, d) => {
    await d.leases.reportToolCall(caller.presented, body, meta, delegationToken(req));
    return { accepted: true };
  },
});

export const checkInRoute = appRoute({
  method: "DELETE",
  path: "/v1/leases/:id",
  operationId: "checkIn",
  tag: "leases",
  summary: "Check a lease in; the account's password is rotated next",
  auth: "lease",
  params: idParam,
  responses: { 202: { description: "the ended lease; rotation follows", schema: leaseOneSchema } },
  errors: [...LEASE_USE, "not_found"],
  handle: ({ caller, params, meta }, d) => d.leases.checkin(caller.presented, params.id, meta),
});

export const pollApprovalRoute = appRoute({
  method: "GET",
  path: "/v1/approvals/:id",
  operationId: "pollApproval",
  tag: "agents",
  summary: "Poll an approval request (the same agent's identity JWT)",
  description:
    "Once approved, the first poll turns the request into a lease (policy decides again with approved: true) and returns it with a lease token; later polls show the approval and its lease, never a second token. When the checkout carried a DPoP proof, every poll needs a fresh proof by that key (401 otherwise).",
  auth: "identity",
  params: approvalParam,
  responses: {
    200: { description: "the approval, and its lease once approved", schema: approvalPollSchema },
  },
  errors: ["not_found", "policy_denied", "resource_busy"],
  handle: ({ caller, params, meta }, d) => d.leases.pollApproval(caller.presented, params.id, meta),
});
