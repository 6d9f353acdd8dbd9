export { type Deps, type ReadyReport, appRoute } from "./app-deps.js";
export { type Authenticate, type AuthOptions, createAuthenticator, operatorCaller } from "./auth.js";
export { bearer, hasAdminToken, presentedToken, requireAdminToken, sameSecret } from "./credentials.js";
export { type RouteApp, parseInput, registerRoutes } from "./register.js";
export { requestMeta, trackAbort, trackCaller } from "./request-meta.js";
export type * from "./route.js";
export { routeDeclarer } from "./route.js";
export { type OwnerDeps, ROUTES, routesOf } from "./route-table.js";
