import { randomBytes, timingSafeEqual } from "node:crypto";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import type { Adapter } from "../adapters/adapter.js";
import { type AuditSink, registerAuditRoutes } from "./audit/index.js";
import { LeaseholdError } from "./errors.js";
import { buildOpenApi } from "./openapi/openapi.js";
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
} from "./openapi/request-schemas.js";
import { dpopRequestUrl } from "./identity/index.js";
import type { Logger } from "./logger.js";
import { isRedisUnavailable } from "./redis.js";
import { revokeSchema } from "./service/lease-service.js";
import type { LeaseService, PresentedToken } from "./service/lease-service.js";
import {
  ADMIN_OPERATOR,
  type Operator,
  type OperatorAction,
  type OperatorService,
} from "./service/operator-service.js";
import type { ResourceService } from "./service/resource-service.js";
import { parseBody } from "./service/validate.js";
import { z } from "zod";

export interface ReadyReport {
  readonly ok: boolean;
  readonly checks: Record<string, boolean>;
}

export interface Deps {
  /** The live audit file(s) `GET /v1/audit` answers from; without them the route is absent. */
  readonly auditFiles?: readonly string[];
  /** Where admin reads of the audit trail are themselves recorded. */
  readonly audit?: AuditSink;
  readonly log: Logger;
  readonly leases: LeaseService;
  readonly resources: ResourceService;
  readonly adapters: ReadonlyMap<string, Adapter<unknown>>;
  readonly adminToken: string;
  /** Operators and DBAs with their own identity JWT, decided by policy; without it, admin token only. */
  readonly operators?: OperatorService;
  readonly ready: () => Promise<ReadyReport>;
  readonly jwks: () => Promise<{ keys: object[] }> | { keys: object[] };
  /** Host names accepted besides localhost, 127.0.0.1 and [::1]. */
  readonly allowedHosts?: readonly string[];
  /** Origins accepted on requests that carry an Origin header. */
  readonly allowedOrigins?: readonly string[];
}

export const BODY_LIMIT = 64 * 1024;
const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

function hostName(host: string | undefined): string {
  if (!host) return "";
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1).toLowerCase();
  return host.split(":")[0]?.toLowerCase() ?? "";
}

function bearer(req: FastifyRequest): string {
  const h = req.headers.authorization;
  if (!h) throw new LeaseholdError("unauthenticated", "an Authorization: Bearer header is required");
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  if (!m?.[1])
    throw new LeaseholdError("unauthenticated", "the Authorization header must be 'Bearer <token>'");
  return m[1];
}

/**
 * An agent's token as presented: `Authorization: Bearer <token>` or `DPoP <token>` (RFC 9449),
 * the `DPoP` proof header, and the method and URL (`dpopRequestUrl`) the proof must name.
 */
function presented(req: FastifyRequest): PresentedToken {
  const h = req.headers.authorization;
  if (!h)
    throw new LeaseholdError("unauthenticated", "an Authorization: Bearer (or DPoP) header is required");
  const m = /^(Bearer|DPoP)\s+(\S+)$/i.exec(h);
  if (!m?.[1] || !m[2]) {
    throw new LeaseholdError(
      "unauthenticated",
      "the Authorization header must be 'Bearer <token>' or 'DPoP <token>'",
    );
  }
  const proof = req.headers.dpop;
  return {
    scheme: m[1].toLowerCase() === "dpop" ? "DPoP" : "Bearer",
    token: m[2],
    proof: typeof proof === "string" ? proof : undefined,
    htm: req.method,
    htu: dpopRequestUrl(req.headers.host, req.url),
  };
}

const STATE_CHANGING = new Set(["POST", "PUT", "DELETE", "PATCH"]);

/**
 * The CSRF rule over TCP: a web page can make a browser send a form POST (or a no-cors fetch)
 * anywhere, but neither a custom header nor a JSON content type without a CORS preflight,
 * which this server never grants. So a state-changing request must show one of them.
 */
function provesNonBrowser(req: FastifyRequest): boolean {
  const marker = req.headers["x-leasehold-request"];
  if (typeof marker === "string" && marker.trim().toLowerCase() === "true") return true;
  const type = req.headers["content-type"];
  const mime = typeof type === "string" ? (type.split(";")[0] ?? "").trim().toLowerCase() : "";
  return mime === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(mime);
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The approver recorded on a decision: an operator identity names itself; only the admin token
 * (shared by whoever can read its file) may say which human is behind it.
 */
function approverName(op: Operator, claimed: string | undefined): string {
  if (op.admin) return claimed ?? op.name;
  if (claimed !== undefined && claimed !== op.name) {
    throw new LeaseholdError(
      "invalid_request",
      "approver: an identity token names its own approver; only the admin token may set it",
    );
  }
  return op.name;
}

/** The groups a registration body would put its resource in (validated later by the registration). */
function proposedGroups(body: unknown): string[] {
  const groups = (body as { groups?: unknown } | null | undefined)?.groups;
  return Array.isArray(groups) ? groups.filter((g): g is string => typeof g === "string") : [];
}

/** Builds the HTTP app (no listen): localhost hardening, error mapping, routes. */
export function buildApp(deps: Deps) {
  const app = Fastify({
    loggerInstance: deps.log,
    bodyLimit: BODY_LIMIT,
    genReqId: () => `req_${randomBytes(9).toString("base64url")}`,
    requestIdHeader: false,
    return503OnClosing: true,
    forceCloseConnections: true,
  });
  // JSON only: no text/plain bodies (fastify accepts them by default).
  app.removeContentTypeParser("text/plain");
  const allowedHosts = new Set([...LOCAL_HOSTS, ...(deps.allowedHosts ?? []).map((h) => h.toLowerCase())]);
  const allowedOrigins = new Set(deps.allowedOrigins ?? []);

  // A client that goes away before its answer aborts the work done for it (e.g. a waiting checkout).
  const aborts = new WeakMap<FastifyRequest, AbortController>();
  app.addHook("onRequest", async (req, reply) => {
    const ac = new AbortController();
    aborts.set(req, ac);
    reply.raw.once("close", () => {
      if (!reply.raw.writableFinished) ac.abort();
    });
    reply.header("x-request-id", req.id);
    reply.header("cache-control", "no-store");
    if (!allowedHosts.has(hostName(req.headers.host))) {
      throw new LeaseholdError("forbidden_host", "requests must be addressed to localhost");
    }
    const origin = req.headers.origin;
    if (origin !== undefined) {
      const own = `http://${req.headers.host ?? ""}`;
      if (!allowedOrigins.has(origin) && origin !== own) {
        throw new LeaseholdError("forbidden_origin", "cross-origin requests are not accepted");
      }
    }
    // Browsers cannot reach a Unix socket, so the rule holds for TCP listeners only.
    if (
      STATE_CHANGING.has(req.method) &&
      typeof app.server.address() !== "string" &&
      !provesNonBrowser(req)
    ) {
      throw new LeaseholdError(
        "forbidden_origin",
        "state-changing requests must carry 'X-Leasehold-Request: true' or a JSON body (Content-Type: application/json)",
      );
    }
  });

  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const e = toLeaseholdError(err);
    if (e.status >= 500)
      req.log.error(
        { err: { code: e.code, detail: e.detail, message: (err as Error).message } },
        "request failed",
      );
    else req.log.info({ code: e.code, detail: e.detail }, "request refused");
    if (e.retryAfter !== undefined) reply.header("retry-after", String(e.retryAfter));
    const body: Record<string, unknown> = {
      code: e.code,
      message: e.expose ? e.message : "internal error",
      request_id: req.id,
    };
    if (e.retryAfter !== undefined) body.retry_after = e.retryAfter;
    return reply.status(e.status).send({ error: body });
  });

  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send({
      error: {
        code: "not_found",
        message: `no route ${req.method} ${req.url.split("?")[0]}`,
        request_id: req.id,
      },
    });
  });

  const requireAdmin = (req: FastifyRequest): string => {
    const token = bearer(req);
    if (!sameSecret(token, deps.adminToken))
      throw new LeaseholdError("unauthenticated", "operator credentials required");
    return "admin";
  };
  /** The admin token, or an identity JWT whose subject policy decides for (see OperatorService). */
  const operator = async (req: FastifyRequest): Promise<Operator> => {
    const token = bearer(req);
    if (sameSecret(token, deps.adminToken)) return ADMIN_OPERATOR;
    if (!deps.operators) throw new LeaseholdError("unauthenticated", "operator credentials required");
    return deps.operators.identify(token);
  };
  /** 403 unless the operator may take `action` on `resource`; returns the actor's name. */
  const authorize = async (
    req: FastifyRequest,
    action: OperatorAction,
    resource: string | ((op: Operator) => Promise<string>),
    proposedGroups?: readonly string[],
  ): Promise<Operator> => {
    const op = await operator(req);
    if (op.admin || !deps.operators) return op;
    const name = typeof resource === "string" ? resource : await resource(op);
    await deps.operators.require(op, action, name, req.id, proposedGroups);
    return op;
  };
  const visible = <T>(op: Operator, action: OperatorAction, items: readonly T[], of: (t: T) => string) =>
    deps.operators ? deps.operators.filter(op, action, items, of) : Promise.resolve([...items]);
  const approvalResource = (id: string) => async () => {
    const found = (await deps.leases.listApprovals()).approvals.find((a) => a.id === id);
    if (!found) throw new LeaseholdError("not_found", "no such approval");
    return found.resource;
  };
  const isAdmin = (req: FastifyRequest): boolean => {
    const h = req.headers.authorization ?? "";
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    return m?.[1] !== undefined && sameSecret(m[1], deps.adminToken);
  };
  const params = <S extends z.ZodType>(schema: S, req: FastifyRequest): z.output<S> =>
    parseBody(schema, req.params, "path");
  const query = <S extends z.ZodType>(schema: S, req: FastifyRequest): z.output<S> =>
    parseBody(schema, req.query ?? {}, "query");
  const meta = (req: FastifyRequest) => ({ requestId: req.id, signal: aborts.get(req)?.signal });

  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
    const r = await deps.ready();
    return reply.status(r.ok ? 200 : 503).send({ status: r.ok ? "ready" : "unavailable", checks: r.checks });
  });
  app.get("/.well-known/jwks.json", async () => deps.jwks());
  // Built on first request: the document is the same for the app's whole life.
  let openApi: object | undefined;
  app.get("/openapi.json", async () => {
    openApi ??= buildOpenApi();
    return openApi;
  });

  // Agents
  app.post("/v1/checkout", async (req, reply) => {
    const out = await deps.leases.checkout(presented(req), req.body, meta(req));
    return reply.status("approval" in out ? 202 : 201).send(out);
  });
  app.get("/v1/leases", async (req) => {
    const op = await operator(req);
    const out = await deps.leases.list(query(listQuery, req));
    return { leases: await visible(op, "revoke", out.leases, (l) => l.resource) };
  });
  app.get("/v1/leases/:id", async (req) => {
    const { id } = params(idParam, req);
    if (isAdmin(req)) return deps.leases.getAny(id);
    return deps.leases.getOwn(presented(req), id, meta(req));
  });
  app.get("/v1/leases/:id/credential", async (req) => {
    const { id } = params(idParam, req);
    return deps.leases.credential(presented(req), id, meta(req));
  });
  app.post("/v1/leases/:id/renew", async (req) => {
    const { id } = params(idParam, req);
    return deps.leases.renew(presented(req), id, req.body ?? {}, meta(req));
  });
  app.post("/v1/leases/:id/tool-calls", async (req, reply) => {
    const { id } = params(idParam, req);
    await deps.leases.toolCall(presented(req), id, req.body, meta(req));
    return reply.status(202).send({ accepted: true });
  });
  app.delete("/v1/leases/:id", async (req, reply) => {
    const { id } = params(idParam, req);
    return reply.status(202).send(await deps.leases.checkin(presented(req), id, meta(req)));
  });

  // Operators
  app.post("/v1/leases/:id/revoke", async (req, reply) => {
    const { id } = params(idParam, req);
    const body = parseBody(revokeSchema, req.body ?? {});
    const op = await authorize(req, "revoke", async () => (await deps.leases.getAny(id)).resource);
    return reply.status(202).send(await deps.leases.revoke(id, body.reason, op.name, meta(req)));
  });
  app.post("/v1/agents/revoke", async (req, reply) => {
    const body = parseBody(revokeAgentSchema, req.body);
    const op = await operator(req);
    if (op.admin || !deps.operators) {
      return reply
        .status(202)
        .send(await deps.leases.revokeAgent(body.agent, body.reason, op.name, meta(req)));
    }
    // An operator identity revokes only where policy lets it, and all or nothing: every
    // resource the agent holds a lease on is decided before any lease is touched.
    const held = (await deps.leases.list({ agent: body.agent })).leases;
    for (const resource of new Set(held.map((l) => l.resource)))
      await deps.operators.require(op, "revoke", resource, req.id);
    const ended = [];
    for (const l of held) {
      try {
        ended.push((await deps.leases.revoke(l.id, body.reason, op.name, meta(req))).lease);
      } catch (err) {
        // Ended meanwhile (check-in, expiry): nothing left to revoke.
        if (!(err instanceof LeaseholdError && err.code === "not_found")) throw err;
      }
    }
    return reply.status(202).send({ leases: ended });
  });
  app.get("/v1/approvals", async (req) => {
    const op = await operator(req);
    const out = await deps.leases.listApprovals(query(approvalListQuery, req).status);
    return { approvals: await visible(op, "approve", out.approvals, (a) => a.resource) };
  });
  app.get("/v1/approvals/:id", async (req) => {
    const { id } = params(approvalParam, req);
    return deps.leases.pollApproval(presented(req), id, meta(req));
  });
  app.post("/v1/approvals/:id/approve", async (req) => {
    const { id } = params(approvalParam, req);
    const body = parseBody(approvalDecisionSchema, req.body ?? {});
    const op = await authorize(req, "approve", approvalResource(id));
    return deps.leases.decideApproval(id, true, approverName(op, body.approver), body.reason, meta(req));
  });
  app.post("/v1/approvals/:id/deny", async (req) => {
    const { id } = params(approvalParam, req);
    const body = parseBody(approvalDecisionSchema, req.body ?? {});
    const op = await authorize(req, "approve", approvalResource(id));
    return deps.leases.decideApproval(id, false, approverName(op, body.approver), body.reason, meta(req));
  });
  app.get("/v1/resources", async (req) => {
    const op = await operator(req);
    const out = await deps.resources.list();
    return { resources: await visible(op, "register", out.resources, (r) => r.name) };
  });
  app.put("/v1/resources/:name", async (req, reply) => {
    const { name } = params(nameParam, req);
    const q = query(registerQuery, req);
    const op = await authorize(req, "register", name, proposedGroups(req.body));
    const out = await deps.resources.register(req.body, {
      dryRun: q.dry_run === "true",
      pathName: name,
      actor: op.name,
      requestId: req.id,
    });
    return reply.status(out.created && !out.dryRun ? 201 : 200).send(out);
  });
  app.get("/v1/resources/:name", async (req) => {
    const { name } = params(nameParam, req);
    await authorize(req, "register", name);
    return deps.resources.show(name);
  });
  app.delete("/v1/resources/:name", async (req) => {
    const { name } = params(nameParam, req);
    const q = query(removeQuery, req);
    const actor = (await authorize(req, "register", name)).name;
    return deps.resources.remove(name, {
      force: q.force === "true",
      actor,
      revoke: (id) => deps.leases.revoke(id, "resource removed", actor, meta(req)),
    });
  });
  app.post("/v1/resources/:name/rotate", async (req) => {
    const { name } = params(nameParam, req);
    const op = await authorize(req, "register", name);
    return deps.resources.rotateAll(name, op.name);
  });
  app.post("/v1/resources/:name/revoke", async (req, reply) => {
    const { name } = params(nameParam, req);
    const body = parseBody(revokeSchema, req.body ?? {});
    const op = await authorize(req, "revoke", name);
    return reply.status(202).send(await deps.leases.revokeResource(name, body.reason, op.name, meta(req)));
  });
  app.post("/v1/resources/:name/verify", async (req) => {
    const { name } = params(nameParam, req);
    await authorize(req, "register", name);
    return deps.resources.verify(name);
  });
  if (deps.auditFiles) {
    const files = deps.auditFiles;
    registerAuditRoutes(app, { files, requireOperator: requireAdmin, audit: deps.audit });
  }
  app.get("/v1/adapters", async (req) => {
    // Adapter types and their config schemas: any operator or DBA identity may read them.
    await operator(req);
    return {
      adapters: [...deps.adapters.values()].map((a) => ({
        id: a.id,
        description: a.description,
        config: z.toJSONSchema(a.config, { unrepresentable: "any" }),
        constraints: a.constraints,
      })),
    };
  });

  return app;
}

/** Maps anything thrown in a request to a LeaseholdError; unknown errors become a bare 500. */
export function toLeaseholdError(err: unknown): LeaseholdError {
  if (err instanceof LeaseholdError) return err;
  const code = (err as { code?: string } | null)?.code;
  switch (code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new LeaseholdError("payload_too_large", `the body is larger than ${BODY_LIMIT} bytes`);
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
    case "FST_ERR_CTP_INVALID_CONTENT_TYPE":
      return new LeaseholdError("unsupported_media_type", "the body must be application/json");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new LeaseholdError("invalid_request", "body: empty JSON body");
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new LeaseholdError("invalid_request", "body: malformed JSON");
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new LeaseholdError("invalid_request", "the Content-Length does not match the body");
    default:
      break;
  }
  if (err instanceof SyntaxError) return new LeaseholdError("invalid_request", "body: malformed JSON");
  if (isRedisUnavailable(err)) {
    return new LeaseholdError("upstream_unavailable", "the lease store (Redis) is unavailable", {
      detail: (err as Error).message,
    });
  }
  const status = (err as { statusCode?: number } | null)?.statusCode;
  if (status === 400) return new LeaseholdError("invalid_request", "the request is malformed");
  return new LeaseholdError("internal", "internal error", { detail: (err as Error)?.message });
}
