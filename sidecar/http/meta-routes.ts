import { healthSchema, jwksSchema, readySchema } from "../openapi/response-schemas.js";
import { appRoute } from "./app-deps.js";

/* Liveness, readiness and the lease-token keys: anyone past the Host/Origin guard. */

export const healthRoute = appRoute({
  method: "GET",
  path: "/healthz",
  operationId: "health",
  tag: "operations",
  summary: "Liveness: the process answers",
  auth: "none",
  responses: { 200: { description: "alive", schema: healthSchema } },
  errors: [],
  handle: () => ({ status: "ok" }),
});

export const readyRoute = appRoute({
  method: "GET",
  path: "/readyz",
  operationId: "ready",
  tag: "operations",
  summary: "Readiness: Redis, Vault and the audit file are usable, and they form one cluster",
  auth: "none",
  responses: {
    200: { description: "ready", schema: readySchema },
    503: { description: "not ready (same body, with the failing check false)", schema: readySchema },
  },
  errors: [],
  handle: async ({ reply }, d) => {
    const r = await d.ready();
    reply.status(r.ok ? 200 : 503);
    return {
      status: r.ok ? "ready" : "unavailable",
      checks: r.checks,
      ...(r.reasons && Object.keys(r.reasons).length > 0 ? { reasons: r.reasons } : {}),
    };
  },
});

export const jwksRoute = appRoute({
  method: "GET",
  path: "/.well-known/jwks.json",
  operationId: "jwks",
  tag: "keys",
  summary: "Public keys of the cluster's lease tokens",
  auth: "none",
  responses: { 200: { description: "a JWK set", schema: jwksSchema } },
  errors: [],
  handle: (_ctx, d) => d.jwks(),
});
