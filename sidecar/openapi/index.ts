export { buildOpenApi, openApiPath, routeErrors } from "./openapi.js";
export * from "./request-schemas.js";
export * from "./response-schemas.js";
export { ROUTES, type RouteAuth, type RouteDoc, type RouteOwner, SCHEMA_NAMES } from "./routes.js";
