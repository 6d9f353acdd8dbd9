import { randomUUID } from "node:crypto";
import type { Backend, HandlerContext, LogicalResult, Route } from "./backend.js";
import { envelope, injectDataIntoTop } from "./envelope.js";
import { FieldError } from "./go-format.js";
import {
  type HttpReply,
  compareGoStrings,
  emptyReply,
  errorReply,
  jsonReply,
  multierror,
} from "./http-util.js";
import { type PolicyStore, requiredCapability } from "./policies.js";
import { type LogicalRequest, type RawRequest, parseLogicalRequest, splitUrl } from "./request.js";
import { type ServerStatus, healthReply, sealStatusReply } from "./sys-health.js";
import type { TokenEntry, TokenStore } from "./token-store.js";
import {
  INVALID_WRAPPING_TOKEN,
  type WrappedResponses,
  isLiveWrappingToken,
  wrapResponse,
} from "./wrapping.js";

/** A backend mounted at `path` (which ends with `/`). */
export interface Mount {
  readonly path: string;
  readonly backend: Backend;
}

/** What the router needs from the rest of the server. */
export interface RouterDeps {
  readonly mounts: readonly Mount[];
  readonly tokens: TokenStore;
  readonly policies: PolicyStore;
  readonly wrapped: WrappedResponses;
  readonly status: () => ServerStatus;
  readonly now: () => number;
}

interface MatchedRoute {
  readonly route: Route;
  readonly params: Record<string, string>;
}

/**
 * Vault's request pipeline, in its order: raw sys handlers, request parsing, seal
 * check, token and ACL check (before routing, so unknown paths are 403 for tokens
 * without access), routing by longest mount prefix and first matching pattern,
 * then the envelope, the nil-response rules and response wrapping.
 */
export class VaultRouter {
  private readonly mounts: readonly Mount[];

  constructor(private readonly deps: RouterDeps) {
    this.mounts = [...deps.mounts].sort((a, b) => b.path.length - a.path.length);
  }

  async handle(raw: RawRequest): Promise<HttpReply> {
    const split = splitUrl(raw.url);
    if (isReply(split)) return split;
    const method = raw.method.toUpperCase();
    if (split.path === "sys/health") return healthReply(method, split.query, this.deps.status());
    if (split.path === "sys/seal-status") return sealStatusReply(method, this.deps.status());
    if (method === "HEAD") return errorReply(405, []);
    const request = parseLogicalRequest(raw, split.path, split.query);
    if (isReply(request)) return request;
    if (this.deps.status().sealed) return errorReply(503, ["Vault is sealed"]);
    return this.dispatch(request);
  }

  private async dispatch(request: LogicalRequest): Promise<HttpReply> {
    const { tokens } = this.deps;
    const now = this.deps.now();
    const requestId = randomUUID();
    const mount = this.findMount(request.path);
    const inMount = mount
      ? request.path.slice(Math.min(mount.path.length, request.path.length))
      : request.path;
    const matched = mount ? matchRoute(mount.backend, inMount) : undefined;
    const { data, ignored, replaced } = mergeData(request.data, matched);
    const baseContext: HandlerContext = {
      request,
      path: inMount,
      params: matched?.params ?? {},
      data,
      token: null,
      requestId,
      now,
    };

    let token: TokenEntry | null = null;
    let lastUse = false;
    if (!matched?.route.unauthenticated) {
      if (
        request.path === "sys/wrapping/unwrap" &&
        (data.token === undefined || data.token === "") &&
        !isLiveWrappingToken(request.token, tokens, this.deps.wrapped, now)
      ) {
        return errorReply(400, [INVALID_WRAPPING_TOKEN]);
      }
      if (request.token === "") return errorReply(403, ["permission denied"]);
      const entry = tokens.lookup(request.token, now);
      // Recent Vault adds "invalid token" for unknown, expired and used-up tokens.
      if (!entry) return errorReply(403, [multierror(["permission denied", "invalid token"])]);
      if (!this.allowed(entry, request, matched, baseContext)) {
        return errorReply(403, [multierror(["permission denied"])]);
      }
      lastUse = tokens.use(entry);
      token = entry;
    }
    const context: HandlerContext = { ...baseContext, token };
    try {
      const result = await this.run(mount, matched, context);
      return this.toReply(result, context, mount, matched, [...ignored], [...replaced]);
    } finally {
      // The last allowed use revokes the token once the request is done.
      if (lastUse && token) tokens.revoke(token.id);
    }
  }

  private findMount(path: string): Mount | undefined {
    const direct = this.mounts.find((m) => path.startsWith(m.path));
    if (direct) return direct;
    // Vault retries with a slash so that "secret" means the mount "secret/".
    return this.mounts.find((m) => `${path}/` === m.path);
  }

  private allowed(
    entry: TokenEntry,
    request: LogicalRequest,
    matched: MatchedRoute | undefined,
    context: HandlerContext,
  ): boolean {
    if (entry.policies.includes("root")) return true;
    const exists =
      request.operation === "update" && matched?.route.exists ? matched.route.exists(context) : true;
    const capability = requiredCapability(request.operation, exists);
    return this.deps.policies
      .acl(entry.policies)
      .allows(request.path, capability, request.operation === "list");
  }

  private async run(
    mount: Mount | undefined,
    matched: MatchedRoute | undefined,
    context: HandlerContext,
  ): Promise<LogicalResult> {
    if (!mount) {
      return {
        kind: "error",
        status: 404,
        errors: [`no handler for route ${JSON.stringify(context.request.path)}. route entry not found.`],
      };
    }
    const handler = matched
      ? matched.route.operations[context.request.operation]
      : (mount.backend.fallback ?? (() => unsupported(404, "unsupported path")));
    if (!handler) return unsupported(405, "unsupported operation");
    try {
      return await handler(context);
    } catch (err) {
      if (err instanceof FieldError)
        return { kind: "error", status: 400, errors: [`Field validation failed: ${err.message}`] };
      throw err;
    }
  }

  private toReply(
    result: LogicalResult,
    context: HandlerContext,
    mount: Mount | undefined,
    matched: MatchedRoute | undefined,
    ignored: string[],
    replaced: string[],
  ): HttpReply {
    if (result.kind === "error") return errorReply(result.status, result.errors);
    if (result.kind === "reply") return result.reply;
    const { request } = context;
    const response = result.response;
    if (response === null) {
      return request.operation === "read" || request.operation === "list"
        ? errorReply(404, [])
        : emptyReply(204);
    }
    const warnings = [...response.warnings];
    if (ignored.length > 0)
      warnings.push(`Endpoint ignored these unrecognized parameters: [${ignored.join(" ")}]`);
    if (replaced.length > 0) {
      warnings.push(
        `Endpoint replaced the value of these parameters with the values captured from the endpoint's path: [${replaced.join(" ")}]`,
      );
    }
    if (request.operation === "list" && warnings.length === 0) {
      const keys = response.data?.keys;
      if (!Array.isArray(keys) || keys.length === 0) return errorReply(404, []);
    }
    let body = envelope(context.requestId, { ...response, warnings }, mount?.backend.type);
    if (matched?.route.injectDataIntoTop) body = injectDataIntoTop(body);
    if (request.wrapTtl > 0) {
      body = wrapResponse(
        body,
        request.wrapTtl,
        request.path,
        this.deps.tokens,
        this.deps.wrapped,
        context.now,
        response.auth?.accessor,
      );
    }
    return jsonReply(200, body);
  }
}

function isReply(value: object): value is HttpReply {
  return "status" in value && "body" in value;
}

function unsupported(status: number, message: string): LogicalResult {
  return { kind: "error", status, errors: [multierror([message])] };
}

function matchRoute(backend: Backend, path: string): MatchedRoute | undefined {
  for (const route of backend.routes) {
    const match = route.pattern.exec(path);
    if (match) return { route, params: { ...(match.groups ?? {}) } };
  }
  return undefined;
}

/**
 * Request data with the path captures written over it, plus the parameter names
 * Vault warns about (unknown ones, and ones the path overrode), both sorted.
 */
function mergeData(
  raw: Record<string, unknown> | null,
  matched: MatchedRoute | undefined,
): { data: Record<string, unknown>; ignored: string[]; replaced: string[] } {
  const data: Record<string, unknown> = { ...(raw ?? {}) };
  const params = matched?.params ?? {};
  const replaced = Object.keys(params).filter((k) => raw !== null && Object.hasOwn(raw, k));
  Object.assign(data, params);
  const fields = new Set(matched?.route.fields ?? []);
  const ignored = matched
    ? Object.keys(raw ?? {}).filter((k) => !fields.has(k) && !Object.hasOwn(params, k))
    : [];
  return { data, ignored: ignored.sort(compareGoStrings), replaced: replaced.sort(compareGoStrings) };
}
