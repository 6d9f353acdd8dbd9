import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type RawServerDefault,
} from "fastify";
import { LeaseholdError } from "./errors.js";
import {
  createAuthenticator,
  type Deps,
  registerRoutes,
  routesOf,
  trackAbort,
  trackCaller,
} from "./http/index.js";
import type { Logger } from "./logger.js";
import { isRedisUnavailable } from "./redis.js";
import { AccessLog, noteRefusal, requestLogger } from "./http/request-log.js";
import { responseSerializerCompiler } from "./http/serialize.js";

export type { Deps, ReadyReport } from "./http/index.js";

export const BODY_LIMIT = 64 * 1024;
/**
 * The longest path parameter the router passes on (decoded). Above any valid one (a task id is up
 * to 200 characters), so that a parameter too long gets the route's 400 naming it, not a 404.
 */
const MAX_PARAM_LENGTH = 8192;
const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** `[addr]` or `[addr]:port`: a bracketed IPv6 literal (RFC 3986 §3.2.2), nothing after it but a port. */
const BRACKETED_HOST = /^(\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;
/** A name or IPv4 address, and at most a numeric port. */
const PLAIN_HOST = /^([^:[\]]+)(?::\d{1,5})?$/;

/**
 * The host of a `Host` header, lower-cased, or "" when the header is not exactly a host and an
 * optional numeric port: `[::1].evil.com` or `localhost:x` name no host, so no allowed one.
 */
function hostName(host: string | undefined): string {
  if (!host) return "";
  const m = BRACKETED_HOST.exec(host) ?? PLAIN_HOST.exec(host);
  return m?.[1]?.toLowerCase() ?? "";
}

/**
 * The one state-changing method a browser sends cross-origin without a preflight (a form, a
 * no-cors fetch). `PUT`, `PATCH` and `DELETE` always need a CORS preflight, which this server
 * never grants, so they need no marker: `curl -X DELETE -H "authorization: …"` works as printed.
 */
const BLIND_METHODS = new Set(["POST"]);

/**
 * The CSRF rule over TCP: a web page can make a browser send a form POST (or a no-cors fetch)
 * anywhere, but neither a custom header nor a JSON content type without a CORS preflight,
 * which this server never grants. So a POST must show one of them.
 */
function provesNonBrowser(req: FastifyRequest): boolean {
  const marker = req.headers["x-leasehold-request"];
  if (typeof marker === "string" && marker.trim().toLowerCase() === "true") return true;
  const type = req.headers["content-type"];
  const mime = typeof type === "string" ? (type.split(";")[0] ?? "").trim().toLowerCase() : "";
  return mime === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(mime);
}

/** Random bytes for request ids, drawn 4 KiB at a time rather than one system call per request. */
const ID_BYTES = 9;
let idPool = Buffer.alloc(0);
let idAt = 0;
function requestId(): string {
  if (idAt + ID_BYTES > idPool.length) {
    idPool = randomBytes(ID_BYTES * 455);
    idAt = 0;
  }
  idAt += ID_BYTES;
  return `req_${idPool.toString("base64url", idAt - ID_BYTES, idAt)}`;
}

/** The app buildApp makes (its logger is pino's). */
type App = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>;

/**
 * Localhost hardening, before routing reaches any handler: the Host must be local (or allowed),
 * an Origin must be allowed, and over TCP a state-changing request must prove it is no browser
 * form. Each request also gets its id header, no-store, an abort signal and (with an attestor)
 * its caller, attested when first asked for.
 */
function guardRequests(app: App, deps: Deps): void {
  const allowedHosts = new Set([...LOCAL_HOSTS, ...(deps.allowedHosts ?? []).map((h) => h.toLowerCase())]);
  const allowedOrigins = new Set(deps.allowedOrigins ?? []);

  const attestor = deps.attestor;
  // A callback hook, not an async one: no promise and no extra microtask turn per request.
  app.addHook("onRequest", (req, reply, done) => {
    // A client that goes away before its answer aborts the work done for it (e.g. a waiting checkout).
    trackAbort(req, reply);
    if (attestor) trackCaller(req, attestor);
    reply.header("x-request-id", req.id);
    reply.header("cache-control", "no-store");
    done(refusal(req));
  });

  /** Why the request is refused before routing, or undefined. */
  function refusal(req: FastifyRequest): LeaseholdError | undefined {
    if (!allowedHosts.has(hostName(req.headers.host))) {
      return new LeaseholdError("forbidden_host", "requests must be addressed to localhost");
    }
    const origin = req.headers.origin;
    if (origin !== undefined) {
      const own = `http://${req.headers.host ?? ""}`;
      if (!allowedOrigins.has(origin) && origin !== own) {
        return new LeaseholdError("forbidden_origin", "cross-origin requests are not accepted");
      }
    }
    // Browsers cannot reach a Unix socket, so the rule holds for TCP listeners only.
    if (BLIND_METHODS.has(req.method) && typeof app.server.address() !== "string" && !provesNonBrowser(req)) {
      return new LeaseholdError(
        "forbidden_origin",
        "a POST must carry 'X-Leasehold-Request: true' or a JSON body (Content-Type: application/json)",
      );
    }
    return undefined;
  }
}

/** Every error, thrown or not found, answers `{ error: { code, message, request_id, details?, hint? } }`. */
function answerErrors(app: App): void {
  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const e = toLeaseholdError(err);
    // The request's one access line (http/request-log.ts) names the code; a fault has its own error line.
    if (e.status >= 500) {
      req.log.error(
        { err: { code: e.code, detail: e.detail, message: (err as Error).message } },
        "request failed",
      );
      noteRefusal(reply, e.code, undefined);
    } else noteRefusal(reply, e.code, e.detail);
    if (e.retryAfter !== undefined) reply.header("retry-after", String(e.retryAfter));
    const body: Record<string, unknown> = {
      code: e.code,
      message: e.expose ? e.message : "internal error",
      request_id: req.id,
    };
    if (e.retryAfter !== undefined) body.retry_after = e.retryAfter;
    if (e.expose && e.details?.length) body.details = e.details;
    if (e.expose && e.hint !== undefined) body.hint = e.hint;
    return reply.status(e.status).send({ error: body });
  });

  app.setNotFoundHandler((req, reply) => {
    noteRefusal(reply, "not_found", undefined);
    reply.status(404).send({
      error: {
        code: "not_found",
        message: `no route ${req.method} ${req.url.split("?")[0]}`,
        request_id: req.id,
      },
    });
  });
}

/**
 * Builds the HTTP app (no listen): localhost hardening, error mapping, then the routes of the
 * route table this app owns (the ops routes are added by registerOpsRoutes).
 */
export function buildApp(deps: Deps) {
  const app = Fastify({
    loggerInstance: deps.log,
    // One access line per request, and a request's child logger only when it writes a line.
    logController: new AccessLog(),
    childLoggerFactory: requestLogger,
    bodyLimit: BODY_LIMIT,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    genReqId: requestId,
    requestIdHeader: false,
    return503OnClosing: true,
    forceCloseConnections: true,
  });
  // JSON only: no text/plain bodies (fastify accepts them by default).
  app.removeContentTypeParser("text/plain");
  // Before any route: answers are written from their documented schemas (fast-json-stringify).
  app.setSerializerCompiler(responseSerializerCompiler(deps.checkResponses ?? false));
  guardRequests(app, deps);
  answerErrors(app);
  const authenticate = createAuthenticator({ adminToken: deps.adminToken, operators: deps.operators });
  registerRoutes(app, routesOf("app"), deps, authenticate);
  if (deps.mcp) {
    const mcp = deps.mcp;
    mcp.startSweeping();
    // Sessions end (their leases checked in) before the services they use close.
    app.addHook("onClose", () => mcp.close());
  }
  if (deps.auditFiles) {
    const audit = { files: deps.auditFiles, audit: deps.audit };
    registerRoutes(app, routesOf("audit"), audit, authenticate);
  }
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
