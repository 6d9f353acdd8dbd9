import { LeaseholdError } from "../errors.js";
import { clusterAdoptSchema } from "../openapi/request-schemas.js";
import { clusterAdoptResultSchema, clusterViewSchema } from "../openapi/response-schemas.js";
import { appRoute, type Deps } from "./app-deps.js";

/*
 * The cluster identity (docs/operations.md, "Cluster identity"): whether this sidecar's Vault
 * prefix and Redis keyspace form one cluster, and adopting a Redis keyspace after a real loss of
 * Redis data. The admin token only: it acts for the whole cluster, not one resource.
 */

function desk(d: Deps) {
  if (!d.cluster) throw new LeaseholdError("not_found", "the cluster identity is not enabled here");
  return d.cluster;
}

export const clusterStatusRoute = appRoute({
  method: "GET",
  path: "/v1/cluster",
  operationId: "clusterStatus",
  tag: "operations",
  summary: "Whether this sidecar's Vault prefix and Redis keyspace form one cluster (operators)",
  auth: "admin",
  responses: { 200: { description: "the cluster's state, checked now", schema: clusterViewSchema } },
  errors: ["not_found"],
  handle: (_ctx, d) => desk(d).status(),
});

export const clusterAdoptRoute = appRoute({
  method: "POST",
  path: "/v1/cluster/adopt",
  operationId: "clusterAdopt",
  tag: "operations",
  summary: "Adopt this Redis keyspace into the cluster after a loss of Redis data (operators)",
  description:
    "Writes the cluster id Vault holds into this Redis keyspace, audited, then reconciles at once: every account Vault records as leased or rotating with no live lease in this Redis is rotated now. Refused (409) when the keyspace names another cluster, unless `force`.",
  auth: "admin",
  body: clusterAdoptSchema,
  bodyOptional: true,
  responses: { 200: { description: "the cluster, adopted", schema: clusterAdoptResultSchema } },
  errors: ["conflict", "not_found", "upstream_unavailable"],
  handle: ({ body, caller, meta }, d) =>
    desk(d).adopt({
      force: body.force,
      reason: body.reason,
      actor: caller.operator.name,
      requestId: meta.requestId,
    }),
});
