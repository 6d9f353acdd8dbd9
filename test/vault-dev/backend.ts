import type { HttpReply } from "./http-util.js";
import type { LogicalRequest, Operation } from "./request.js";
import type { AuthBlock, TokenEntry } from "./token-store.js";

/** The `logical.Response` a handler returns; the router turns it into the envelope. */
export interface LogicalResponse {
  readonly data: Record<string, unknown> | null;
  readonly warnings: readonly string[];
  readonly auth: AuthBlock | null;
}

/** What a handler produced. */
export type LogicalResult =
  /** Success; `response: null` is Vault's nil response (204, or 404 for read/list). */
  | { readonly kind: "response"; readonly response: LogicalResponse | null }
  /** `logical.ErrorResponse` and friends: `{"errors":[...]}` with this status. */
  | { readonly kind: "error"; readonly status: number; readonly errors: readonly string[] }
  /** `logical.RespondWithStatusCode` / raw bodies, written as they are. */
  | { readonly kind: "reply"; readonly reply: HttpReply };

/** Everything a handler may look at. */
export interface HandlerContext {
  readonly request: LogicalRequest;
  /** The path inside the mount (without the mount prefix). */
  readonly path: string;
  /** Named captures of the route pattern. */
  readonly params: Readonly<Record<string, string>>;
  /** Request data with the path captures written over it. */
  readonly data: Readonly<Record<string, unknown>>;
  /** The caller's token; `null` on unauthenticated (login) routes. */
  readonly token: TokenEntry | null;
  readonly requestId: string;
  readonly now: number;
}

export type Handler = (ctx: HandlerContext) => LogicalResult | Promise<LogicalResult>;

/** One `framework.Path`: a pattern tried in order, its fields and operations. */
export interface Route {
  /** Anchored pattern over the in-mount path; named groups become `params`. */
  readonly pattern: RegExp;
  /** Parameters the route declares (request keys outside this list draw a warning). */
  readonly fields: readonly string[];
  readonly operations: Partial<Record<Operation, Handler>>;
  /** `ExistenceCheck`: decides whether an update needs `create` or `update` capability. */
  readonly exists?: (ctx: HandlerContext) => boolean;
  /** Login paths: no token required, a stale one is ignored. */
  readonly unauthenticated?: boolean;
  /** Routes listed in Vault's `injectDataIntoTopRoutes`: data keys are copied to the top level. */
  readonly injectDataIntoTop?: boolean;
}

/** A mounted engine (`logical.Backend`). */
export interface Backend {
  /** Mount type, reported as `mount_type`. */
  readonly type: string;
  readonly routes: readonly Route[];
  /** Answers paths no route matches (KV v2's "invalid path"); default: unsupported path. */
  readonly fallback?: Handler;
}

/** A successful response with data (200). */
export function respond(
  data: Record<string, unknown> | null,
  extra: { warnings?: readonly string[]; auth?: AuthBlock | null } = {},
): LogicalResult {
  return { kind: "response", response: { data, warnings: extra.warnings ?? [], auth: extra.auth ?? null } };
}

/** Vault's nil response: 204 for writes, 404 for reads. */
export function noResponse(): LogicalResult {
  return { kind: "response", response: null };
}

/** An error response with a plain message (`logical.ErrorResponse`). */
export function failure(status: number, ...errors: string[]): LogicalResult {
  return { kind: "error", status, errors };
}

/** A raw reply that bypasses the envelope. */
export function rawResult(reply: HttpReply): LogicalResult {
  return { kind: "reply", reply };
}
