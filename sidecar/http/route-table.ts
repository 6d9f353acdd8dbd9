import { type AuditHandlerDeps, auditQueryRoute } from "../audit/audit-routes.js";
import { buildOpenApi } from "../openapi/openapi.js";
import { openApiDocumentSchema } from "../openapi/response-schemas.js";
import {
  dashboardAssetRoute,
  dashboardRoute,
  metricsRoute,
  type OpsHandlerDeps,
} from "../ops/ops-route-defs.js";
import { streamRoute } from "../ops/sse-route.js";
import { appRoute, type Deps } from "./app-deps.js";
import {
  agentToolCallRoute,
  catalogRoute,
  checkInRoute,
  checkoutRoute,
  credentialRoute,
  getLeaseRoute,
  pollApprovalRoute,
  renewRoute,
  toolCallRoute,
} from "./lease-routes.js";
import { clusterAdoptRoute, clusterStatusRoute } from "./cluster-routes.js";
import { tokenExchangeRoute } from "./delegation-routes.js";
import { healthRoute, jwksRoute, readyRoute } from "./meta-routes.js";
import {
  approveRoute,
  denyRoute,
  listAdaptersRoute,
  listApprovalsRoute,
  listLeasesRoute,
  revokeAgentRoute,
  revokeLeaseRoute,
} from "./operator-routes.js";
import {
  listResourcesRoute,
  registerResourceRoute,
  removeResourceRoute,
  revokeResourceRoute,
  rotateResourceRoute,
  showResourceRoute,
  verifyResourceRoute,
} from "./resource-routes.js";
import type { RouteDef, RouteOwner } from "./route.js";
import { completeTaskRoute, revokeTaskRoute } from "./task-routes.js";

// Route modules import route.ts and the schema files directly, never an index that would import
// this table back before it is built.

// Built on first request: the document is the same for the app's whole life.
let openApi: object | undefined;

export const openApiRoute = appRoute({
  method: "GET",
  path: "/openapi.json",
  operationId: "openapi",
  tag: "operations",
  summary: "This document",
  auth: "none",
  responses: { 200: { description: "OpenAPI 3.1", schema: openApiDocumentSchema } },
  errors: [],
  handle: () => {
    openApi ??= buildOpenApi();
    return openApi;
  },
});

/** The deps each owner's registrar hands to the handlers of its routes. */
export interface OwnerDeps {
  readonly app: Deps;
  readonly ops: OpsHandlerDeps;
  readonly audit: AuditHandlerDeps;
}

type TableRoute = RouteDef<Deps> | RouteDef<OpsHandlerDeps> | RouteDef<AuditHandlerDeps>;

/**
 * Every route of the HTTP API (DESIGN.md), each declared once in the module that owns its
 * behaviour, in the order of the OpenAPI document and docs/api.md. The registrars
 * (buildApp, registerOpsRoutes) and the OpenAPI builder all read this list.
 */
export const ROUTES: readonly TableRoute[] = [
  catalogRoute,
  checkoutRoute,
  getLeaseRoute,
  credentialRoute,
  renewRoute,
  toolCallRoute,
  checkInRoute,
  pollApprovalRoute,
  agentToolCallRoute,
  completeTaskRoute,
  listLeasesRoute,
  streamRoute,
  revokeLeaseRoute,
  revokeAgentRoute,
  revokeTaskRoute,
  listApprovalsRoute,
  approveRoute,
  denyRoute,
  listResourcesRoute,
  registerResourceRoute,
  showResourceRoute,
  removeResourceRoute,
  rotateResourceRoute,
  revokeResourceRoute,
  verifyResourceRoute,
  listAdaptersRoute,
  auditQueryRoute,
  clusterStatusRoute,
  clusterAdoptRoute,
  healthRoute,
  readyRoute,
  metricsRoute,
  dashboardRoute,
  dashboardAssetRoute,
  jwksRoute,
  openApiRoute,
  tokenExchangeRoute,
];

/** The routes of the table one owner registers, typed with the deps their handlers take. */
export function routesOf<O extends RouteOwner>(owner: O): RouteDef<OwnerDeps[O]>[] {
  // Each route was declared with its owner's declarer (appRoute, opsRoute, ...), which ties
  // `owner` to the deps type.
  return ROUTES.filter((r) => r.owner === owner) as RouteDef<OwnerDeps[O]>[];
}
