import type { FastifyReply, FastifyRequest } from "fastify";
import type { z } from "zod";
import type { ErrorCode } from "../errors.js";
import type { Operator, PresentedToken, RequestMeta } from "../service/index.js";

/**
 * Who may call a route: `identity` an agent's identity JWT, `lease` the lease token of that
 * lease, `admin` the admin token only, `operator-<action>` the admin token or an identity JWT
 * whose subject policy allows `Action::"<action>"` on the resource (`operator`: any verified
 * identity), `none` anyone who passes the Host/Origin guard.
 */
export type RouteAuth =
  | "none"
  | "identity"
  | "lease"
  | "admin"
  | "operator"
  | "operator-revoke"
  | "operator-approve"
  | "operator-register"
  | "lease-or-admin"
  | "admin-if-configured";

/**
 * Which deps a route's handler takes, hence who registers it: `app` buildApp, `ops`
 * registerOpsRoutes, `audit` buildApp when audit files are given.
 */
export type RouteOwner = "app" | "ops" | "audit";

export interface RouteResponse {
  readonly description: string;
  /** A named zod schema (JSON), or a content type served as text. */
  readonly schema?: z.ZodType;
  readonly contentType?: string;
}

/** One route of the HTTP API as the OpenAPI document and docs/api.md describe it. */
export interface RouteDoc {
  readonly method: "GET" | "POST" | "PUT" | "DELETE";
  /** Fastify form: `/v1/leases/:id`. */
  readonly path: string;
  readonly operationId: string;
  readonly tag: "agents" | "leases" | "approvals" | "resources" | "operations" | "keys";
  readonly summary: string;
  readonly description?: string;
  readonly auth: RouteAuth;
  readonly owner: RouteOwner;
  readonly params?: z.ZodObject;
  readonly query?: z.ZodObject;
  readonly body?: z.ZodType;
  /** A body may be left out (`{}` is assumed). */
  readonly bodyOptional?: boolean;
  /** The name an invalid body's message starts with. @default "body" */
  readonly bodyName?: string;
  readonly responses: Readonly<Record<number, RouteResponse>>;
  /** Error codes beyond those every route of its kind may answer (see routeErrors). */
  readonly errors: readonly ErrorCode[];
}

/** A caller that showed nothing (routes whose auth is `none`, or an unconfigured `admin-if-configured`). */
export interface AnonymousCaller {
  readonly kind: "anonymous";
}

/** An agent's token as presented, for the service to verify (identity JWT or lease token). */
export interface AgentCaller {
  readonly kind: "agent";
  readonly presented: PresentedToken;
}

/** The admin token, or a verified identity acting as operator or DBA. */
export interface OperatorCaller {
  readonly kind: "operator";
  readonly operator: Operator;
  /**
   * Resolves when the route's action on `resource` is allowed (always for the admin token; the
   * decision is audited); throws 403 `policy_denied` otherwise. A function names the resource
   * only when a decision is needed. `proposedGroups`: see OperatorService.require.
   */
  require(resource: string | (() => Promise<string>), proposedGroups?: readonly string[]): Promise<void>;
  /** The items whose resource the route's action is allowed on (all of them for the admin token). */
  visible<T>(items: readonly T[], resourceOf: (t: T) => string): Promise<T[]>;
}

export type Caller = AnonymousCaller | AgentCaller | OperatorCaller;

/** The caller a route of this auth kind's handler sees. */
export type CallerOf<A extends RouteAuth> = A extends "identity" | "lease"
  ? AgentCaller
  : A extends "lease-or-admin"
    ? AgentCaller | OperatorCaller
    : A extends "admin" | "operator" | `operator-${string}`
      ? OperatorCaller
      : A extends "admin-if-configured"
        ? AnonymousCaller | OperatorCaller
        : AnonymousCaller;

/** A schema's parsed value; `undefined` when the route declares no such schema. */
export type Parsed<S> = S extends z.ZodType ? z.output<S> : undefined;

/** The request's parts, parsed with the route's schemas. */
export interface RouteInput<P, Q, B> {
  readonly params: P;
  readonly query: Q;
  readonly body: B;
}

export interface RouteContext<A extends RouteAuth, P, Q, B> extends RouteInput<P, Q, B> {
  readonly req: FastifyRequest;
  readonly reply: FastifyReply;
  readonly caller: CallerOf<A>;
  readonly meta: RequestMeta;
}

/**
 * One route, declared once: its documentation, who may call it, its schemas and its handler.
 * The registrar (registerRoutes) authenticates by `auth`, parses params, query and body with
 * their schemas, decides `resource` for `operator-<action>` routes, then calls `handle` with
 * `deps`; the OpenAPI builder reads the same entry.
 */
export interface RouteDef<D, A extends RouteAuth = RouteAuth, P = unknown, Q = unknown, B = unknown>
  extends RouteDoc {
  readonly auth: A;
  /**
   * The resource an `operator-<action>` route acts on; the action is decided on it before the
   * handler runs. Routes that act on several resources or on lists decide in the handler.
   */
  resource?(input: RouteInput<P, Q, B>, deps: D): string | Promise<string>;
  /**
   * The `WWW-Authenticate` header of this route's 401 answers (RFC 6750 §3), e.g. where the
   * protected-resource metadata is (RFC 9728 §5.1).
   */
  challenge?(req: FastifyRequest, deps: D): string | undefined;
  /** The groups a registration would put its resource in (decided as well as the current ones). */
  proposedGroups?(input: RouteInput<P, Q, B>): readonly string[];
  /**
   * Answers the request: a returned value is sent as JSON, with the route's only 2xx status
   * when it documents one (otherwise the handler sets the status on `reply`). A streaming route
   * (`/mcp`) hijacks the reply and writes the raw response itself, after every check passed.
   */
  handle(ctx: RouteContext<A, P, Q, B>, deps: D): unknown;
}

type Spec<D, A extends RouteAuth, PS, QS, BS> = Omit<
  RouteDef<D, A, Parsed<PS>, Parsed<QS>, Parsed<BS>>,
  "owner" | "params" | "query" | "body"
> & { readonly params?: PS; readonly query?: QS; readonly body?: BS };

/**
 * A route declarer for one owner: `appRoute({ ... })` types the handler's params, query and
 * body from the schemas given, and its caller from `auth`.
 */
export function routeDeclarer<D>(owner: RouteOwner) {
  return <
    A extends RouteAuth,
    PS extends z.ZodObject | undefined = undefined,
    QS extends z.ZodObject | undefined = undefined,
    BS extends z.ZodType | undefined = undefined,
  >(
    spec: Spec<D, A, PS, QS, BS>,
  ): RouteDef<D> => ({ ...spec, owner });
}
