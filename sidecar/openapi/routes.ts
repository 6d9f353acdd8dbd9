import type { z } from "zod";
import { auditQuerySchema } from "../audit/audit-routes.js";
import type { ErrorCode } from "../errors.js";
import { registrationSchema } from "../resources/types.js";
import { checkoutSchema, renewSchema, revokeSchema, toolCallSchema } from "../service/lease-service.js";
import {
  approvalDecisionSchema,
  approvalListQuery,
  approvalParam,
  idParam,
  listQuery,
  nameParam,
  registerQuery,
  removeQuery,
  revokeAgentSchema,
} from "./request-schemas.js";
import {
  acceptedSchema,
  adapterListSchema,
  approvalListSchema,
  approvalOneSchema,
  approvalPollSchema,
  auditPageSchema,
  checkoutCreatedSchema,
  checkoutPendingSchema,
  credentialSchema,
  healthSchema,
  jwksSchema,
  leaseListSchema,
  leaseManySchema,
  leaseOneSchema,
  leaseSchema,
  openApiDocumentSchema,
  readySchema,
  registerResultSchema,
  removeResultSchema,
  resourceListSchema,
  resourceViewSchema,
  rotateResultSchema,
  verifyResultSchema,
} from "./response-schemas.js";

/**
 * Who may call a route: `identity` an agent's identity JWT, `lease` the lease token of that
 * lease, `admin` the admin token only, `operator-<action>` the admin token or an identity JWT
 * whose subject policy allows `Action::"<action>"` on the resource (`operator`: any verified
 * identity), `none` anyone who passes the Host/Origin guard.
 */
export type RouteAuth =
  | "none"
  | "identity"
  | "lease"
  | "admin"
  | "operator"
  | "operator-revoke"
  | "operator-approve"
  | "operator-register"
  | "lease-or-admin"
  | "admin-if-configured";

/** Where the route is registered; `app` is sidecar/app.ts. */
export type RouteOwner = "app" | "ops" | "audit";

export interface RouteResponse {
  readonly description: string;
  /** A named zod schema (JSON), or a content type served as text. */
  readonly schema?: z.ZodType;
  readonly contentType?: string;
}

/** One route of the HTTP API, described for the OpenAPI document. */
export interface RouteDoc {
  readonly method: "GET" | "POST" | "PUT" | "DELETE";
  /** Fastify form: `/v1/leases/:id`. */
  readonly path: string;
  readonly operationId: string;
  readonly tag: "agents" | "leases" | "approvals" | "resources" | "operations" | "keys";
  readonly summary: string;
  readonly description?: string;
  readonly auth: RouteAuth;
  readonly owner: RouteOwner;
  readonly params?: z.ZodObject;
  readonly query?: z.ZodObject;
  readonly body?: z.ZodType;
  /** A body may be left out (`{}` is assumed). */
  readonly bodyOptional?: boolean;
  readonly responses: Readonly<Record<number, RouteResponse>>;
  /** Error codes beyond those every route of its kind may answer (see routeErrors). */
  readonly errors: readonly ErrorCode[];
}

/** Names of the request and response schemas in `components.schemas`. */
export const SCHEMA_NAMES = new Map<z.ZodType, string>([
  [checkoutSchema, "CheckoutRequest"],
  [renewSchema, "RenewRequest"],
  [toolCallSchema, "ToolCallRequest"],
  [revokeSchema, "RevokeRequest"],
  [revokeAgentSchema, "RevokeAgentRequest"],
  [approvalDecisionSchema, "ApprovalDecisionRequest"],
  [registrationSchema, "Registration"],
  [leaseSchema, "Lease"],
  [checkoutCreatedSchema, "CheckoutCreated"],
  [checkoutPendingSchema, "CheckoutPending"],
  [credentialSchema, "Credential"],
  [leaseOneSchema, "LeaseResult"],
  [leaseManySchema, "LeasesResult"],
  [leaseListSchema, "LeaseList"],
  [acceptedSchema, "Accepted"],
  [approvalPollSchema, "ApprovalPoll"],
  [approvalOneSchema, "ApprovalResult"],
  [approvalListSchema, "ApprovalList"],
  [resourceListSchema, "ResourceList"],
  [resourceViewSchema, "Resource"],
  [registerResultSchema, "RegisterResult"],
  [verifyResultSchema, "VerifyResult"],
  [rotateResultSchema, "RotateResult"],
  [removeResultSchema, "RemoveResult"],
  [adapterListSchema, "AdapterList"],
  [healthSchema, "Health"],
  [readySchema, "Ready"],
  [jwksSchema, "Jwks"],
  [auditPageSchema, "AuditPage"],
  [openApiDocumentSchema, "OpenApiDocument"],
]);

const LEASE_USE: readonly ErrorCode[] = ["lease_expired", "lease_revoked"];

/** Every route of the HTTP API (DESIGN.md), in the order of the document. */
export const ROUTES: readonly RouteDoc[] = [
  {
    method: "POST",
    path: "/v1/checkout",
    operationId: "checkout",
    tag: "agents",
    summary: "Check out one account of a resource for one task and intent",
    description:
      "Policy decides at request time. 201 with the lease and its token; 202 with a pending approval when policy wants a human; 409 resource_busy (with retry_after) when every account is leased and `wait` ran out.",
    auth: "identity",
    owner: "app",
    body: checkoutSchema,
    responses: {
      201: { description: "the lease and its lease token", schema: checkoutCreatedSchema },
      202: {
        description: "policy wants a human: poll GET /v1/approvals/{id}",
        schema: checkoutPendingSchema,
      },
    },
    errors: ["policy_denied", "not_found", "resource_busy", "conflict"],
  },
  {
    method: "GET",
    path: "/v1/leases/:id",
    operationId: "getLease",
    tag: "leases",
    summary: "Read a lease (its holder with the lease token, or an operator)",
    auth: "lease-or-admin",
    owner: "app",
    params: idParam,
    responses: { 200: { description: "the lease", schema: leaseSchema } },
    errors: [...LEASE_USE, "not_found"],
  },
  {
    method: "GET",
    path: "/v1/leases/:id/credential",
    operationId: "revealCredential",
    tag: "leases",
    summary: "Reveal the leased account's password",
    description:
      "Policy decides the reveal; a resource registered with `reveal: false` never answers here (use its proxy). Audited; Cache-Control: no-store.",
    auth: "lease",
    owner: "app",
    params: idParam,
    responses: { 200: { description: "the credential", schema: credentialSchema } },
    errors: [...LEASE_USE, "policy_denied", "not_found", "conflict"],
  },
  {
    method: "POST",
    path: "/v1/leases/:id/renew",
    operationId: "renewLease",
    tag: "leases",
    summary: "Extend a lease (never past max_expires_at)",
    auth: "lease",
    owner: "app",
    params: idParam,
    body: renewSchema,
    bodyOptional: true,
    responses: { 200: { description: "the renewed lease", schema: leaseOneSchema } },
    errors: [...LEASE_USE, "policy_denied", "not_found"],
  },
  {
    method: "POST",
    path: "/v1/leases/:id/tool-calls",
    operationId: "recordToolCall",
    tag: "leases",
    summary: "Record one tool call made with the lease (policy decides, then audited)",
    auth: "lease",
    owner: "app",
    params: idParam,
    body: toolCallSchema,
    responses: { 202: { description: "recorded", schema: acceptedSchema } },
    errors: [...LEASE_USE, "policy_denied", "not_found"],
  },
  {
    method: "DELETE",
    path: "/v1/leases/:id",
    operationId: "checkIn",
    tag: "leases",
    summary: "Check a lease in; the account's password is rotated next",
    auth: "lease",
    owner: "app",
    params: idParam,
    responses: { 202: { description: "the ended lease; rotation follows", schema: leaseOneSchema } },
    errors: [...LEASE_USE, "not_found"],
  },
  {
    method: "GET",
    path: "/v1/approvals/:id",
    operationId: "pollApproval",
    tag: "agents",
    summary: "Poll an approval request (the same agent's identity JWT)",
    description:
      "Once approved, the first poll turns the request into a lease (policy decides again with approved: true) and returns it with a lease token; later polls return the same lease with a fresh token.",
    auth: "identity",
    owner: "app",
    params: approvalParam,
    responses: {
      200: { description: "the approval, and its lease once approved", schema: approvalPollSchema },
    },
    errors: ["not_found", "policy_denied", "resource_busy"],
  },
  {
    method: "GET",
    path: "/v1/leases",
    operationId: "listLeases",
    tag: "leases",
    summary: "List active leases (operators)",
    auth: "operator-revoke",
    owner: "app",
    query: listQuery,
    responses: { 200: { description: "active leases, soonest expiry first", schema: leaseListSchema } },
    errors: [],
  },
  {
    method: "GET",
    path: "/v1/leases/stream",
    operationId: "streamLeaseEvents",
    tag: "operations",
    summary: "Lease events as Server-Sent Events (operators)",
    auth: "admin",
    owner: "ops",
    responses: {
      200: { description: "text/event-stream of lease events", contentType: "text/event-stream" },
    },
    errors: ["rate_limited"],
  },
  {
    method: "POST",
    path: "/v1/leases/:id/revoke",
    operationId: "revokeLease",
    tag: "leases",
    summary: "Revoke a lease now (operators); its token is refused on next use",
    auth: "operator-revoke",
    owner: "app",
    params: idParam,
    body: revokeSchema,
    bodyOptional: true,
    responses: { 202: { description: "the ended lease; rotation follows", schema: leaseOneSchema } },
    errors: ["not_found"],
  },
  {
    method: "POST",
    path: "/v1/agents/revoke",
    operationId: "revokeAgent",
    tag: "leases",
    summary: "Revoke every active lease of one agent (operators)",
    auth: "operator-revoke",
    owner: "app",
    body: revokeAgentSchema,
    responses: { 202: { description: "the leases ended", schema: leaseManySchema } },
    errors: [],
  },
  {
    method: "GET",
    path: "/v1/approvals",
    operationId: "listApprovals",
    tag: "approvals",
    summary: "List approval requests (operators)",
    auth: "operator-approve",
    owner: "app",
    query: approvalListQuery,
    responses: { 200: { description: "approval requests", schema: approvalListSchema } },
    errors: ["not_found"],
  },
  {
    method: "POST",
    path: "/v1/approvals/:id/approve",
    operationId: "approve",
    tag: "approvals",
    summary: "Approve a pending checkout (operators)",
    auth: "operator-approve",
    owner: "app",
    params: approvalParam,
    body: approvalDecisionSchema,
    bodyOptional: true,
    responses: { 200: { description: "the decided approval", schema: approvalOneSchema } },
    errors: ["not_found", "conflict"],
  },
  {
    method: "POST",
    path: "/v1/approvals/:id/deny",
    operationId: "deny",
    tag: "approvals",
    summary: "Deny a pending checkout (operators)",
    auth: "operator-approve",
    owner: "app",
    params: approvalParam,
    body: approvalDecisionSchema,
    bodyOptional: true,
    responses: { 200: { description: "the decided approval", schema: approvalOneSchema } },
    errors: ["not_found", "conflict"],
  },
  {
    method: "GET",
    path: "/v1/resources",
    operationId: "listResources",
    tag: "resources",
    summary: "List registered resources (operators, DBAs)",
    auth: "operator-register",
    owner: "app",
    responses: { 200: { description: "registered resources", schema: resourceListSchema } },
    errors: [],
  },
  {
    method: "PUT",
    path: "/v1/resources/:name",
    operationId: "registerResource",
    tag: "resources",
    summary: "Register or update a resource (verifies, then puts its accounts under management)",
    description:
      "The body is a registration (docs/configuration.md). The admin credential is checked; each new account is rotated once unless importRotation is false. `dry_run=true` checks everything and changes nothing.",
    auth: "operator-register",
    owner: "app",
    params: nameParam,
    query: registerQuery,
    body: registrationSchema,
    responses: {
      201: { description: "registered", schema: registerResultSchema },
      200: { description: "updated, or the result of a dry run", schema: registerResultSchema },
    },
    errors: ["conflict"],
  },
  {
    method: "GET",
    path: "/v1/resources/:name",
    operationId: "showResource",
    tag: "resources",
    summary: "A resource and the state of each account (never a password)",
    auth: "operator-register",
    owner: "app",
    params: nameParam,
    responses: { 200: { description: "the resource", schema: resourceViewSchema } },
    errors: ["not_found"],
  },
  {
    method: "DELETE",
    path: "/v1/resources/:name",
    operationId: "removeResource",
    tag: "resources",
    summary: "Remove a registration (force=true revokes its active leases first)",
    description: "The account records stay in Vault: the last working password of each account is kept.",
    auth: "operator-register",
    owner: "app",
    params: nameParam,
    query: removeQuery,
    responses: { 200: { description: "removed", schema: removeResultSchema } },
    errors: ["not_found", "conflict"],
  },
  {
    method: "POST",
    path: "/v1/resources/:name/rotate",
    operationId: "rotateResource",
    tag: "resources",
    summary: "Rotate every account that is not leased now (quarantined ones included)",
    auth: "operator-register",
    owner: "app",
    params: nameParam,
    responses: { 200: { description: "the outcome per account", schema: rotateResultSchema } },
    errors: ["not_found"],
  },
  {
    method: "POST",
    path: "/v1/resources/:name/revoke",
    operationId: "revokeResource",
    tag: "resources",
    summary: "Revoke every active lease of a resource (operators)",
    auth: "operator-revoke",
    owner: "app",
    params: nameParam,
    body: revokeSchema,
    bodyOptional: true,
    responses: { 202: { description: "the leases ended", schema: leaseManySchema } },
    errors: [],
  },
  {
    method: "POST",
    path: "/v1/resources/:name/verify",
    operationId: "verifyResource",
    tag: "resources",
    summary: "Check that the admin credential and each stored password log in",
    auth: "operator-register",
    owner: "app",
    params: nameParam,
    responses: { 200: { description: "the outcome per account", schema: verifyResultSchema } },
    errors: ["not_found"],
  },
  {
    method: "GET",
    path: "/v1/adapters",
    operationId: "listAdapters",
    tag: "resources",
    summary: "Adapter types with the JSON Schema of their connection settings",
    auth: "operator",
    owner: "app",
    responses: { 200: { description: "loaded adapters", schema: adapterListSchema } },
    errors: [],
  },
  {
    method: "GET",
    path: "/v1/audit",
    operationId: "queryAudit",
    tag: "operations",
    summary: "Query the audit trail, newest first (operators; the query is itself audited)",
    auth: "admin",
    owner: "audit",
    query: auditQuerySchema,
    responses: { 200: { description: "one page of audit records", schema: auditPageSchema } },
    errors: [],
  },
  {
    method: "GET",
    path: "/healthz",
    operationId: "health",
    tag: "operations",
    summary: "Liveness: the process answers",
    auth: "none",
    owner: "app",
    responses: { 200: { description: "alive", schema: healthSchema } },
    errors: [],
  },
  {
    method: "GET",
    path: "/readyz",
    operationId: "ready",
    tag: "operations",
    summary: "Readiness: Redis, Vault and the audit file are usable",
    auth: "none",
    owner: "app",
    responses: {
      200: { description: "ready", schema: readySchema },
      503: { description: "not ready (same body, with the failing check false)", schema: readySchema },
    },
    errors: [],
  },
  {
    method: "GET",
    path: "/metrics",
    operationId: "metrics",
    tag: "operations",
    summary: "Prometheus metrics (the admin token only when ops.metricsRequireToken)",
    auth: "admin-if-configured",
    owner: "ops",
    responses: { 200: { description: "Prometheus text format", contentType: "text/plain" } },
    errors: [],
  },
  {
    method: "GET",
    path: "/ui",
    operationId: "dashboard",
    tag: "operations",
    summary: "The operator dashboard (it asks for the admin token)",
    auth: "none",
    owner: "ops",
    responses: { 200: { description: "HTML", contentType: "text/html" } },
    errors: [],
  },
  {
    method: "GET",
    path: "/ui/:asset",
    operationId: "dashboardAsset",
    tag: "operations",
    summary: "A file of the dashboard",
    auth: "none",
    owner: "ops",
    responses: { 200: { description: "the file", contentType: "application/octet-stream" } },
    errors: [],
  },
  {
    method: "GET",
    path: "/.well-known/jwks.json",
    operationId: "jwks",
    tag: "keys",
    summary: "Public keys of the cluster's lease tokens",
    auth: "none",
    owner: "app",
    responses: { 200: { description: "a JWK set", schema: jwksSchema } },
    errors: [],
  },
  {
    method: "GET",
    path: "/openapi.json",
    operationId: "openapi",
    tag: "operations",
    summary: "This document",
    auth: "none",
    owner: "app",
    responses: { 200: { description: "OpenAPI 3.1", schema: openApiDocumentSchema } },
    errors: [],
  },
];
