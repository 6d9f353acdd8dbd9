import { z } from "zod";

/*
 * The path, query and body schemas of the route table (sidecar/http) that are not a service's
 * request (those are in sidecar/service/requests.ts). The registrar validates with them at the
 * edge and the OpenAPI document describes the very same objects.
 */

/** `GET /v1/leases` filters. */
export const listQuery = z.strictObject({
  resource: z.string().max(63).optional(),
  agent: z.string().max(512).optional(),
  state: z.enum(["active", "ended"]).optional(),
});

/** `POST /v1/agents/revoke`: every active lease of one agent. */
export const revokeAgentSchema = z.strictObject({
  agent: z.string().min(1).max(512),
  reason: z.string().max(500).optional(),
});

/** `{id}` of a lease. */
export const idParam = z.strictObject({
  id: z.string().regex(/^lse_[A-Za-z0-9_-]{10,64}$/, "not a lease id"),
});

/** `{name}` of a resource. */
export const nameParam = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "not a resource name"),
});

/** `{id}` of an approval. */
export const approvalParam = z.strictObject({
  id: z.string().regex(/^apr_[A-Za-z0-9_-]{10,64}$/, "not an approval id"),
});

/** `GET /v1/approvals` filter. */
export const approvalListQuery = z.strictObject({
  status: z.enum(["pending", "approved", "denied", "expired"]).optional(),
});

/** `approver` names the human behind the admin token (the CLI sends the operator's login). */
export const approvalDecisionSchema = z.strictObject({
  reason: z.string().max(500).optional(),
  approver: z.string().min(1).max(200).optional(),
});

/** `PUT /v1/resources/{name}?dry_run=true`: check everything, change nothing. */
export const registerQuery = z.strictObject({ dry_run: z.enum(["true", "false"]).optional() });

/** `DELETE /v1/resources/{name}?force=true`: revoke active leases first. */
export const removeQuery = z.strictObject({ force: z.enum(["true", "false"]).optional() });
