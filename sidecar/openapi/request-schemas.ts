import { z } from "zod";
import { taskIdText } from "../service/requests.js";
import { oneOf } from "../util/one-of.js";
import { plainText } from "../util/text.js";

/*
 * The path, query and body schemas of the route table (sidecar/http) that are not a service's
 * request (those are in sidecar/service/requests.ts). The registrar validates with them at the
 * edge and the OpenAPI document describes the very same objects.
 */

/** `GET /v1/leases` filters. */
/** Leases per page of `GET /v1/leases` unless the query says otherwise. */
export const DEFAULT_LEASE_PAGE = 500;
/** The most leases one page of `GET /v1/leases` may ask for. */
export const MAX_LEASE_PAGE = 1000;

/** `GET /v1/leases?resource=&agent=&state=&limit=&cursor=`: active leases, one page at a time. */
export const listQuery = z.strictObject({
  resource: plainText(63).optional(),
  agent: plainText(512).optional(),
  state: oneOf(["active", "ended"]).optional(),
  limit: z
    .string()
    .regex(/^\d{1,4}$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().int().min(1).max(MAX_LEASE_PAGE))
    .optional()
    .describe(`leases per page, 1-${MAX_LEASE_PAGE} (default ${DEFAULT_LEASE_PAGE})`),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,1200}$/, "not a cursor")
    .optional()
    .describe("the `next_cursor` of the previous page"),
});

/** `POST /v1/agents/revoke`: every active lease of one agent. */
export const revokeAgentSchema = z.strictObject({
  agent: plainText(512, 1),
  reason: plainText(500).optional(),
});

/** `POST /v1/resources/{name}/rotate`: the accounts (default) or the admin password. */
export const rotateSchema = z.strictObject({
  /** Rotate the resource's admin password instead of its accounts. @default false */
  admin: z.boolean().optional(),
});

/** `{id}` of a lease. */
export const idParam = z.strictObject({
  id: z.string().regex(/^lse_[A-Za-z0-9_-]{10,64}$/, "not a lease id"),
});

/** `{id}` of a task: the id agents give at checkout (`task.id`). */
export const taskParam = z.strictObject({ id: taskIdText });

/** `{name}` of a resource. */
export const nameParam = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "not a resource name"),
});

/** `{id}` of an approval. */
export const approvalParam = z.strictObject({
  id: z.string().regex(/^apr_[A-Za-z0-9_-]{10,64}$/, "not an approval id"),
});

/** Most approvals one page of `GET /v1/approvals` holds. */
export const MAX_APPROVAL_PAGE = 200;

/** Approvals on a page of `GET /v1/approvals` when the query names no limit. */
export const DEFAULT_APPROVAL_PAGE = 50;

/** `GET /v1/approvals?status=&limit=&cursor=`: newest first, one page at a time. */
export const approvalListQuery = z.strictObject({
  status: oneOf(["pending", "approved", "denied", "expired"]).optional(),
  limit: z
    .string()
    .regex(/^\d{1,4}$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().int().min(1).max(MAX_APPROVAL_PAGE))
    .optional()
    .describe(`approvals per page, 1-${MAX_APPROVAL_PAGE} (default ${DEFAULT_APPROVAL_PAGE})`),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,200}$/, "not a cursor")
    .optional()
    .describe("the `next` of the previous page"),
});

/** `approver` names the human behind the admin token (the CLI sends the operator's login). */
export const approvalDecisionSchema = z.strictObject({
  reason: plainText(500).optional(),
  approver: plainText(200, 1).optional(),
});

/**
 * `PUT /v1/resources/{name}?dry_run=true`: check everything, change nothing.
 * `allow_partial=true`: register the accounts that pass even when others fail.
 */
export const registerQuery = z.strictObject({
  dry_run: z.enum(["true", "false"]).optional(),
  allow_partial: z.enum(["true", "false"]).optional(),
});

/** `DELETE /v1/resources/{name}?force=true`: revoke active leases first, release whatever is left. */
export const removeQuery = z.strictObject({ force: z.enum(["true", "false"]).optional() });

/**
 * `POST /v1/token-exchange` (RFC 8693 §2.1 names, as JSON): the delegator's own identity JWT as
 * `subject_token`, the actor's SPIFFE ID as `audience`, a `scope` (space-separated resource
 * names) that only narrows the delegator's own.
 */
export const tokenExchangeSchema = z.strictObject({
  grant_type: z.literal("urn:ietf:params:oauth:grant-type:token-exchange"),
  subject_token: z.string().min(1).max(8192),
  subject_token_type: z.literal("urn:ietf:params:oauth:token-type:jwt"),
  requested_token_type: z.literal("urn:ietf:params:oauth:token-type:jwt").optional(),
  audience: z.string().min(1).max(512),
  scope: z.string().max(2000).optional(),
});

/** `POST /v1/cluster/adopt`: take this Redis keyspace into the cluster (after a loss of Redis data). */
export const clusterAdoptSchema = z.strictObject({
  /** Adopt even a keyspace that names another cluster (it would take that cluster's leases over). */
  force: z.boolean().default(false),
  reason: plainText(500).optional(),
});

/** One JSON-RPC 2.0 message (MCP); the MCP server checks the rest. */
const jsonRpcMessage = z.looseObject({ jsonrpc: z.literal("2.0") });

/** `POST /mcp`: a JSON-RPC message of the MCP Streamable HTTP transport, or a batch of them. */
export const mcpMessageSchema = z
  .union([jsonRpcMessage, z.array(jsonRpcMessage).min(1).max(100)])
  .describe("A JSON-RPC 2.0 message (or a batch) of the Model Context Protocol.");
