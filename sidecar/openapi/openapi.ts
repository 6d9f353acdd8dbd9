import { z } from "zod";
import { ERROR_STATUS, type ErrorCode } from "../errors.js";
import { errorSchema } from "./response-schemas.js";
import { ROUTES, type RouteDoc, SCHEMA_NAMES } from "./routes.js";

type Json = Record<string, unknown>;

const SECURITY: Record<RouteDoc["auth"], Json[]> = {
  none: [],
  identity: [{ identityJwt: [] }],
  lease: [{ leaseToken: [] }],
  admin: [{ adminToken: [] }],
  operator: [{ adminToken: [] }, { identityJwt: [] }],
  "operator-revoke": [{ adminToken: [] }, { identityJwt: [] }],
  "operator-approve": [{ adminToken: [] }, { identityJwt: [] }],
  "operator-register": [{ adminToken: [] }, { identityJwt: [] }],
  "lease-or-admin": [{ leaseToken: [] }, { adminToken: [] }],
  "admin-if-configured": [{}, { adminToken: [] }],
};

/** `/v1/leases/:id` → `/v1/leases/{id}`. */
export function openApiPath(fastifyPath: string): string {
  return fastifyPath.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
}

/**
 * The error codes a route may answer with: its own plus those every route of its kind shares
 * (the Host/Origin guard, authentication, validation, Redis/Vault faults).
 */
export function routeErrors(r: RouteDoc): ErrorCode[] {
  const codes = new Set<ErrorCode>(["forbidden_host", "forbidden_origin", "internal"]);
  if (r.auth !== "none") codes.add("unauthenticated");
  if (r.auth.startsWith("operator-")) codes.add("policy_denied");
  if (r.params || r.query || r.body) codes.add("invalid_request");
  if (r.body) {
    codes.add("payload_too_large");
    codes.add("unsupported_media_type");
  }
  if (r.path.startsWith("/v1/")) codes.add("upstream_unavailable");
  for (const c of r.errors) codes.add(c);
  return Object.keys(ERROR_STATUS).filter((c): c is ErrorCode => codes.has(c as ErrorCode));
}

function nameOf(schema: z.ZodType): string {
  const name = SCHEMA_NAMES.get(schema);
  if (!name) throw new Error("a route schema has no name in SCHEMA_NAMES");
  return name;
}

const ref = (schema: z.ZodType) => ({ $ref: `#/components/schemas/${nameOf(schema)}` });

/** Converts the schemas of one direction (requests: input, responses: output) into components. */
function components(schemas: readonly z.ZodType[], io: "input" | "output"): Record<string, Json> {
  const registry = z.registry<{ id: string }>();
  for (const s of new Set(schemas)) registry.add(s, { id: nameOf(s) });
  const out = z.toJSONSchema(registry, {
    io,
    unrepresentable: "any",
    uri: (id) => `#/components/schemas/${id}`,
  }) as { schemas: Record<string, Json> };
  const clean: Record<string, Json> = {};
  for (const [name, s] of Object.entries(out.schemas)) {
    const { $schema: _s, $id: _i, ...rest } = s;
    clean[name] = rest;
  }
  return clean;
}

function parameters(schema: z.ZodObject | undefined, where: "path" | "query"): Json[] {
  if (!schema) return [];
  const js = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as {
    properties?: Record<string, Json>;
    required?: string[];
  };
  return Object.entries(js.properties ?? {}).map(([name, s]) => {
    const { description, ...rest } = s;
    return {
      name,
      in: where,
      required: where === "path" || (js.required ?? []).includes(name),
      ...(typeof description === "string" ? { description } : {}),
      schema: rest,
    };
  });
}

const DPOP_HEADER: Json = {
  name: "DPoP",
  in: "header",
  required: false,
  description:
    "A DPoP proof (RFC 9449) naming this method and URL. At checkout it binds the lease token to the agent's key (token_type DPoP); a bound token must then be sent as `Authorization: DPoP <token>` with a fresh proof on every use.",
  schema: { type: "string" },
};

const CSRF_HEADER: Json = {
  name: "X-Leasehold-Request",
  in: "header",
  required: false,
  description:
    "Over TCP, a POST, PUT or DELETE must carry this header or a JSON body (Content-Type: application/json), which a browser cannot send cross-site without a preflight; otherwise 403 forbidden_origin. Not needed over the Unix socket.",
  schema: { type: "string", enum: ["true"] },
};

function headers(r: RouteDoc): Json[] {
  const out: Json[] = [];
  if (r.auth === "identity" || r.auth === "lease" || r.auth === "lease-or-admin") out.push(DPOP_HEADER);
  if (r.method !== "GET") out.push(CSRF_HEADER);
  return out;
}

function operation(r: RouteDoc): Json {
  const responses: Record<string, Json> = {};
  const requestId = { "x-request-id": { $ref: "#/components/headers/RequestId" } };
  for (const [status, res] of Object.entries(r.responses)) {
    const content = res.schema
      ? { "application/json": { schema: ref(res.schema) } }
      : { [res.contentType ?? "text/plain"]: { schema: { type: "string" } } };
    responses[status] = { description: res.description, headers: requestId, content };
  }
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of routeErrors(r)) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    if (responses[String(status)]) continue;
    const retry = codes.includes("resource_busy") || codes.includes("rate_limited");
    responses[String(status)] = {
      description: codes.map((c) => `\`${c}\``).join(", "),
      headers: retry
        ? { ...requestId, "retry-after": { $ref: "#/components/headers/RetryAfter" } }
        : requestId,
      content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
    };
  }
  return {
    operationId: r.operationId,
    tags: [r.tag],
    summary: r.summary,
    ...(r.description ? { description: r.description } : {}),
    security: SECURITY[r.auth],
    ...(r.params || r.query || headers(r).length > 0
      ? { parameters: [...parameters(r.params, "path"), ...parameters(r.query, "query"), ...headers(r)] }
      : {}),
    ...(r.body
      ? {
          requestBody: {
            required: !r.bodyOptional,
            content: { "application/json": { schema: ref(r.body) } },
          },
        }
      : {}),
    responses,
    "x-leasehold-errors": routeErrors(r),
  };
}

/**
 * The OpenAPI 3.1 document of leasehold's HTTP API, built from the route table and the zod
 * schemas the routes validate with. Pure: the same document on every call.
 */
export function buildOpenApi(): Json {
  const requests = ROUTES.flatMap((r) => (r.body ? [r.body] : []));
  const replies = ROUTES.flatMap((r) =>
    Object.values(r.responses).flatMap((x) => (x.schema ? [x.schema] : [])),
  );
  const paths: Record<string, Record<string, Json>> = {};
  for (const r of ROUTES) {
    const p = openApiPath(r.path);
    paths[p] = { ...paths[p], [r.method.toLowerCase()]: operation(r) };
  }
  const errorComponent = z.toJSONSchema(errorSchema, { io: "output" }) as Json;
  const { $schema: _drop, ...error } = errorComponent;
  return {
    openapi: "3.1.0",
    info: {
      title: "leasehold",
      version: "1",
      summary:
        "Credential sidecar for AI agents: per-agent identity, short leases, rotation after every use.",
      description:
        "JSON only. Requests must be addressed to localhost (or a configured host) and carry no foreign Origin; over TCP, a POST must carry `X-Leasehold-Request: true` or a JSON body (PUT, PATCH and DELETE need no marker: browsers cannot send them cross-origin without a preflight). Bodies over 64 KiB get 413. Every answer carries x-request-id; every error has the shape of the Error schema.",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    servers: [{ url: "http://127.0.0.1:7733", description: "the default listener" }],
    tags: [
      { name: "agents", description: "checkout and approval polling, with the agent's identity JWT" },
      { name: "leases", description: "one lease, with its lease token; or operators with the admin token" },
      { name: "approvals", description: "human approval of checkouts (operators)" },
      { name: "resources", description: "legacy systems and their accounts (operators, DBAs)" },
      { name: "operations", description: "health, readiness, metrics, events, audit" },
      { name: "keys", description: "lease-token verification keys" },
    ],
    paths,
    components: {
      schemas: { ...components(requests, "input"), ...components(replies, "output"), Error: error },
      securitySchemes: {
        identityJwt: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description:
            "The agent's identity: a JWT-SVID, or an assertion signed by the agent's own key (`leasehold agent assert`).",
        },
        leaseToken: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description:
            "The lease token returned by checkout; checked against the lease in Redis on every use.",
        },
        adminToken: {
          type: "http",
          scheme: "bearer",
          description: "The admin token `leasehold serve` writes (0600) to admin.tokenFile on first start.",
        },
      },
      headers: {
        RequestId: {
          description: "the request's id, also in the logs and the audit trail",
          schema: { type: "string" },
        },
        RetryAfter: { description: "seconds to wait before retrying", schema: { type: "integer" } },
      },
    },
  };
}
