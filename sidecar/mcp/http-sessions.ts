import { randomBytes } from "node:crypto";
import type { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { FastifyReply, FastifyRequest } from "fastify";
import { LeaseholdError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { IdentityPort, PresentedToken, RequestMeta, VerifiedCaller } from "../service/index.js";
import { type McpRequestContext, currentMcpRequest, runInMcpRequest } from "./request-context.js";

/** The MCP server one session's transport is connected to (the SDK's `McpServer` fits). */
export interface McpSessionServer {
  connect(transport: Transport): Promise<void>;
  close(): Promise<void>;
}

/** A session as the server built for it sees it. */
export interface McpSessionInfo {
  readonly id: string;
  /** The agent the session is bound to. */
  readonly subject: string;
  /**
   * The request being handled: the identity its token proved and its meta. Outside a request
   * (the session ending on its idle timeout), the last request's.
   */
  context(): McpRequestContext;
  /** Runs once when the session ends (DELETE, idle timeout, the sidecar closing). */
  onEnd(fn: () => Promise<void>): void;
}

/** Verifies the DPoP proof of a request, if it has one: its key's thumbprint (LeaseAuth.proofAtIssue; refusals audited). */
export type ProofCheck = (
  presented: PresentedToken,
  fields: { readonly agent: string; readonly request_id: string },
) => Promise<string | undefined>;

export interface McpHttpOptions {
  readonly identity: IdentityPort;
  readonly proof: ProofCheck;
  /** Builds the MCP server of a new session; its tools act as `session.context().caller`. */
  readonly serverFor: (session: McpSessionInfo) => McpSessionServer | Promise<McpSessionServer>;
  /** A session with no request for this long ends, seconds. */
  readonly idleSeconds: number;
  /** Sessions one agent may hold open at once. */
  readonly maxSessionsPerAgent: number;
  /** The trust entries' issuers: the authorization servers the protected-resource metadata names. */
  readonly issuers: readonly string[];
  /** DPoP proof algorithms accepted (the metadata's `dpop_signing_alg_values_supported`). */
  readonly dpopAlgorithms: readonly string[];
  readonly log: Logger;
  readonly now?: (() => number) | undefined;
}

/** One `/mcp` request as the route hands it over. */
export interface McpHttpRequest {
  readonly req: FastifyRequest;
  readonly reply: FastifyReply;
  readonly presented: PresentedToken;
  /** The parsed JSON-RPC message(s) of a POST; undefined for GET and DELETE. */
  readonly body: unknown;
  readonly meta: RequestMeta;
}

interface Session {
  readonly id: string;
  readonly subject: string;
  /** The DPoP key the opening request proved: every later request proves it too. */
  readonly jkt: string | undefined;
  readonly transport: StreamableHTTPServerTransport;
  server: McpSessionServer | undefined;
  readonly ends: Array<() => Promise<void>>;
  last: McpRequestContext;
  lastActive: number;
  /** Responses still open (a tool call running, an SSE stream listening): not idle. */
  open: number;
  ended: boolean;
}

/** The `Mcp-Session-Id` header (Streamable HTTP transport). */
const SESSION_HEADER = "mcp-session-id";

/** RFC 9728: where a protected resource's metadata is, under the resource's origin. */
/** The MCP SDK's transport, loaded on the first `/mcp` request: a sidecar that serves none never loads it. */
type McpSdk = {
  readonly StreamableHTTPServerTransport: typeof StreamableHTTPServerTransport;
  readonly isInitializeRequest: (value: unknown) => boolean;
};
let sdk: Promise<McpSdk> | undefined;
function mcpSdk(): Promise<McpSdk> {
  sdk ??= Promise.all([
    import("@modelcontextprotocol/sdk/server/streamableHttp.js"),
    import("@modelcontextprotocol/sdk/types.js"),
  ]).then(([http, types]) => ({
    StreamableHTTPServerTransport: http.StreamableHTTPServerTransport,
    isInitializeRequest: types.isInitializeRequest,
  }));
  return sdk;
}

export const PROTECTED_RESOURCE_PATH = "/.well-known/oauth-protected-resource";

/** Where a request addressed to `host` finds the MCP endpoint and its metadata. */
function origin(req: FastifyRequest): string {
  return `http://${req.headers.host ?? "127.0.0.1"}`;
}

function sessionHeader(req: FastifyRequest): string | undefined {
  const h = req.headers[SESSION_HEADER];
  if (h === undefined) return undefined;
  if (typeof h !== "string" || !/^[\x21-\x7e]{1,128}$/.test(h))
    throw new LeaseholdError("invalid_request", "Mcp-Session-Id: must be one visible ASCII string");
  return h;
}

/** The `cnf.jkt` of an identity token bound to a key (RFC 9449 §6), if it is. */
function boundKey(caller: VerifiedCaller): string | undefined {
  const cnf = caller.claims.cnf;
  if (cnf === null || typeof cnf !== "object") return undefined;
  const jkt = (cnf as { jkt?: unknown }).jkt;
  return typeof jkt === "string" ? jkt : undefined;
}

const unknownSession = () =>
  new LeaseholdError(
    "not_found",
    "no such MCP session for this agent (it ended or idled out): initialize a new one",
  );

/**
 * MCP over HTTP (the Streamable HTTP transport of the MCP SDK) for `POST`, `GET` and `DELETE /mcp`.
 *
 * Identity tokens are one-time, but an MCP client sends the same Authorization header on every
 * request. So: every request presents a valid identity token; the one that opens a session (the
 * initialize request) is spent (its jti); a session is bound to that token's subject (and DPoP
 * key, when the opening request proved one), and its later requests must present a valid token
 * of the same subject (the same token again, until it expires, or a fresh one). A session ends
 * on DELETE, after `idleSeconds` without a request, or when the sidecar closes; an agent holds at
 * most `maxSessionsPerAgent`. See docs/security.md.
 */
export class McpHttp {
  private readonly sessions = new Map<string, Session>();
  private readonly now: () => number;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly o: McpHttpOptions) {
    this.now = o.now ?? Date.now;
  }

  /** The `WWW-Authenticate` challenge of a refused request (RFC 6750 §3, RFC 9728 §5.1). */
  challenge(req: FastifyRequest): string {
    return `Bearer resource_metadata="${origin(req)}${PROTECTED_RESOURCE_PATH}"`;
  }

  /** The protected-resource metadata (RFC 9728) of the MCP endpoint the request's host names. */
  metadata(req: FastifyRequest) {
    return {
      resource: `${origin(req)}/mcp`,
      ...(this.o.issuers.length > 0 ? { authorization_servers: [...this.o.issuers] } : {}),
      bearer_methods_supported: ["header"],
      resource_name: "leasehold",
      dpop_signing_alg_values_supported: [...this.o.dpopAlgorithms],
    };
  }

  /** Sessions open now, by agent (for tests and views). */
  count(subject?: string): number {
    let n = 0;
    for (const s of this.sessions.values()) if (subject === undefined || s.subject === subject) n++;
    return n;
  }

  /**
   * Authenticates one request (401/403/404/429 as LeaseholdError, before anything is written),
   * then hands the raw request and response to the session's transport (the reply is hijacked).
   */
  async handle(r: McpHttpRequest): Promise<void> {
    const { StreamableHTTPServerTransport, isInitializeRequest } = await mcpSdk();
    const id = sessionHeader(r.req);
    let session: Session;
    let caller: VerifiedCaller;
    if (id === undefined) {
      const opening = r.req.method === "POST" && isInitializeRequest(r.body);
      // Spent when it opens a session: the token that opens one opens no other.
      caller = await this.o.identity.verify(r.presented.token, opening ? undefined : { oneTime: false });
      if (!opening) {
        throw new LeaseholdError(
          "invalid_request",
          "Mcp-Session-Id: required; only an MCP initialize request (POST) opens a session without one",
        );
      }
      const jkt = await this.proveKey(caller, r, undefined);
      this.requireRoom(caller.subject);
      session = await this.open(caller, jkt, r.meta, StreamableHTTPServerTransport);
    } else {
      session = this.live(id);
      caller = await this.o.identity.verify(r.presented.token, { oneTime: false });
      // Another agent learns nothing of the session: the same answer as for an unknown id.
      if (caller.subject !== session.subject) {
        this.o.log.warn(
          { session: id, agent: caller.subject },
          "an MCP session was presented by another agent",
        );
        throw unknownSession();
      }
      await this.proveKey(caller, r, session.jkt);
    }
    await this.serve(session, { caller, meta: r.meta }, r);
  }

  /** Ends every session whose last request is older than the idle timeout at `at` and that has no request at work. */
  async sweep(at = this.now()): Promise<void> {
    const cutoff = at - this.o.idleSeconds * 1000;
    for (const s of [...this.sessions.values()]) {
      if (s.open === 0 && s.lastActive < cutoff) await this.end(s, "idle");
    }
  }

  /** Sweeps idle sessions every `everyMs` (unref'd) until close. */
  startSweeping(everyMs = Math.max(1000, Math.min(60_000, (this.o.idleSeconds * 1000) / 4))): void {
    this.sweeper ??= setInterval(() => {
      this.sweep().catch((err: unknown) =>
        this.o.log.warn({ err: { message: (err as Error).message } }, "MCP session sweep failed"),
      );
    }, everyMs);
    this.sweeper.unref();
  }

  /** Ends every session (the sidecar is closing). */
  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    await Promise.all([...this.sessions.values()].map((s) => this.end(s, "closing")));
  }

  /** A live session by id; an idled-out one ends here. @throws 404 not_found */
  private live(id: string): Session {
    const s = this.sessions.get(id);
    if (!s || s.ended) throw unknownSession();
    if (s.open === 0 && s.lastActive < this.now() - this.o.idleSeconds * 1000) {
      void this.end(s, "idle");
      throw unknownSession();
    }
    return s;
  }

  /**
   * The request's DPoP proof, checked when it has one (htm/htu of this request) and required by
   * an identity token bound to a key (`cnf.jkt`) or a session opened with a proof.
   */
  private async proveKey(
    caller: VerifiedCaller,
    r: McpHttpRequest,
    sessionKey: string | undefined,
  ): Promise<string | undefined> {
    const jkt = await this.o.proof(r.presented, { agent: caller.subject, request_id: r.meta.requestId });
    const tokenKey = boundKey(caller);
    if (tokenKey !== undefined && jkt !== tokenKey) {
      throw new LeaseholdError(
        "unauthenticated",
        "the identity token is DPoP-bound (cnf.jkt): send a fresh DPoP proof by its key naming this request",
      );
    }
    if (sessionKey !== undefined && jkt !== sessionKey) {
      throw new LeaseholdError(
        "unauthenticated",
        "this MCP session was opened with a DPoP proof: every request needs a fresh proof by the same key",
      );
    }
    return jkt;
  }

  private requireRoom(subject: string): void {
    const max = this.o.maxSessionsPerAgent;
    if (this.count(subject) >= max) {
      throw new LeaseholdError(
        "rate_limited",
        `this agent has ${max} MCP sessions open (mcp.maxSessionsPerAgent): end one (DELETE /mcp) or let one idle out`,
        { retryAfter: Math.min(this.o.idleSeconds, 60) },
      );
    }
  }

  /** A new session bound to `caller`'s subject; it joins the table once the SDK initializes it. */
  private async open(
    caller: VerifiedCaller,
    jkt: string | undefined,
    meta: RequestMeta,
    TransportClass: McpSdk["StreamableHTTPServerTransport"],
  ): Promise<Session> {
    const transport = new TransportClass({
      sessionIdGenerator: () => `mcp_${randomBytes(18).toString("base64url")}`,
      onsessioninitialized: (sid) => {
        this.sessions.set(sid, session);
      },
      // Awaited before DELETE is answered: the session's leases are checked in by then.
      onsessionclosed: () => this.end(session, "deleted"),
    });
    const session: Session = {
      get id() {
        return transport.sessionId ?? "";
      },
      subject: caller.subject,
      jkt,
      transport,
      server: undefined,
      ends: [],
      last: { caller, meta },
      lastActive: this.now(),
      open: 0,
      ended: false,
    };
    // Before connect: the server chains its own close handler after this one.
    transport.onclose = () => void this.end(session, "closed");
    const info: McpSessionInfo = {
      get id() {
        return session.id;
      },
      subject: session.subject,
      context: () => {
        const here = currentMcpRequest();
        return here?.caller.subject === session.subject ? here : session.last;
      },
      onEnd: (fn) => session.ends.push(fn),
    };
    session.server = await this.o.serverFor(info);
    return session;
  }

  /** Hands the request to the session's transport, as `ctx`; the reply is hijacked. */
  private async serve(session: Session, ctx: McpRequestContext, r: McpHttpRequest): Promise<void> {
    const { reply } = r;
    session.last = ctx;
    session.lastActive = this.now();
    // A request at work (a tool call waiting for an approval) keeps the session; the listening
    // GET stream every client holds open does not, or no connected session would ever idle out.
    if (r.req.method === "POST") {
      session.open++;
      reply.raw.once("close", () => {
        session.open--;
        session.lastActive = this.now();
      });
    }
    // The headers the guard set (request id, no-store) go out on the raw response too.
    for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) reply.raw.setHeader(k, v);
    reply.hijack();
    try {
      if (!session.transport.sessionId && session.server) await session.server.connect(session.transport);
      await runInMcpRequest(ctx, () =>
        session.transport.handleRequest(r.req.raw, reply.raw, r.req.method === "POST" ? r.body : undefined),
      );
      // An initialize the SDK refused leaves a session that never joined the table.
      if (!session.transport.sessionId) await this.end(session, "refused");
    } catch (err) {
      this.o.log.error({ err: { message: (err as Error).message } }, "MCP request failed");
      if (!reply.raw.headersSent) {
        reply.raw.statusCode = 500;
        reply.raw.setHeader("content-type", "application/json");
        reply.raw.end(
          JSON.stringify({
            error: { code: "internal", message: "internal error", request_id: r.meta.requestId },
          }),
        );
      }
    }
  }

  /** Ends a session once: out of the table, its end hooks (held leases checked in), its server closed. */
  private async end(s: Session, why: string): Promise<void> {
    if (s.ended) return;
    s.ended = true;
    if (s.id) this.sessions.delete(s.id);
    this.o.log.info({ session: s.id, agent: s.subject, why }, "MCP session ended");
    for (const fn of s.ends.splice(0)) {
      await fn().catch((err: unknown) =>
        this.o.log.warn(
          { err: { message: (err as Error).message }, session: s.id },
          "MCP session end hook failed",
        ),
      );
    }
    // On DELETE the transport closes itself (and its server) once it has answered.
    if (why === "deleted") return;
    await s.server?.close().catch(() => undefined);
    await s.transport.close().catch(() => undefined);
  }
}
