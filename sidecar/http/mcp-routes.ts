import type { FastifyRequest } from "fastify";
import { LeaseholdError } from "../errors.js";
import { type McpHttp, PROTECTED_RESOURCE_PATH } from "../mcp/http-sessions.js";
import { mcpMessageSchema } from "../openapi/request-schemas.js";
import { protectedResourceSchema } from "../openapi/response-schemas.js";
import { appRoute, type Deps } from "./app-deps.js";
import type { RouteContext } from "./route.js";

/*
 * MCP over HTTP (issue 21): the Streamable HTTP transport of the MCP SDK on `/mcp`, authenticated
 * by the agent's identity JWT (sidecar/mcp/http-sessions.ts), and the protected-resource metadata
 * (RFC 9728) MCP clients read to learn who issues the tokens. `mcp.http: false` turns all four off.
 */

const off = () => new LeaseholdError("not_found", "MCP over HTTP is off on this sidecar (mcp.http: false)");

function mcpOf(d: Deps): McpHttp {
  if (!d.mcp) throw off();
  return d.mcp;
}

const SESSION_DOC =
  "Every request carries the agent's identity JWT (`Authorization: Bearer`), and a DPoP proof naming this request when the token is DPoP-bound or the session was opened with one. The initialize request opens a session and spends its token; later requests carry `Mcp-Session-Id` and a valid token of the same agent (the same one until it expires, or a fresh one). A 401 carries `WWW-Authenticate: Bearer resource_metadata=…`. Errors of the MCP transport itself (406, 415, a malformed message) are JSON-RPC error objects.";

const handle = async (ctx: RouteContext<"identity", unknown, unknown, unknown>, d: Deps) =>
  mcpOf(d).handle({
    req: ctx.req,
    reply: ctx.reply,
    presented: ctx.caller.presented,
    body: ctx.body,
    meta: ctx.meta,
  });

const challenge = (req: FastifyRequest, d: Deps) => d.mcp?.challenge(req);

export const mcpPostRoute = appRoute({
  method: "POST",
  path: "/mcp",
  operationId: "mcpPost",
  tag: "agents",
  summary: "MCP (Streamable HTTP): a JSON-RPC message to the sidecar's MCP server",
  description: SESSION_DOC,
  auth: "identity",
  body: mcpMessageSchema,
  bodyName: "message",
  responses: {
    200: {
      description:
        "the answers, as a stream of server-sent events (JSON-RPC messages; a tool's progress notifications before its result); the initialize answer carries `Mcp-Session-Id`",
      contentType: "text/event-stream",
    },
    202: { description: "a notification or response accepted (no body)", contentType: "text/plain" },
  },
  errors: ["not_found", "rate_limited", "upstream_unavailable"],
  challenge,
  handle,
});

export const mcpGetRoute = appRoute({
  method: "GET",
  path: "/mcp",
  operationId: "mcpStream",
  tag: "agents",
  summary: "MCP (Streamable HTTP): the session's stream of server-initiated messages",
  description: SESSION_DOC,
  auth: "identity",
  responses: {
    200: { description: "server-sent events (JSON-RPC messages)", contentType: "text/event-stream" },
  },
  errors: ["invalid_request", "not_found", "upstream_unavailable"],
  challenge,
  handle,
});

export const mcpDeleteRoute = appRoute({
  method: "DELETE",
  path: "/mcp",
  operationId: "mcpEnd",
  tag: "agents",
  summary: "MCP (Streamable HTTP): end the session (the leases it holds are checked in)",
  description: SESSION_DOC,
  auth: "identity",
  responses: { 200: { description: "the session ended (no body)", contentType: "text/plain" } },
  errors: ["invalid_request", "not_found", "upstream_unavailable"],
  challenge,
  handle,
});

export const protectedResourceRoute = appRoute({
  method: "GET",
  path: PROTECTED_RESOURCE_PATH,
  operationId: "protectedResource",
  tag: "keys",
  summary: "OAuth protected-resource metadata (RFC 9728) of the MCP endpoint",
  description:
    "What the MCP authorization spec asks a server to publish: the resource (`http://<host>/mcp`) and the authorization servers whose tokens it accepts (the issuers of `identity.trust`).",
  auth: "none",
  responses: { 200: { description: "the metadata", schema: protectedResourceSchema } },
  errors: ["not_found"],
  handle: ({ req }, d) => mcpOf(d).metadata(req),
});
