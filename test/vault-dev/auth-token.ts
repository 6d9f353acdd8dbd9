import {
  type Backend,
  type HandlerContext,
  type LogicalResult,
  failure,
  noResponse,
  respond,
} from "./backend.js";
import {
  commaStrings,
  formatGoDuration,
  isJsonObject,
  parseDurationSeconds,
  weakBool,
  weakInt,
  weakString,
} from "./go-format.js";
import type { PolicyStore } from "./policies.js";
import { SYSTEM_MAX_TTL, type TokenEntry, type TokenStore, sanitizePolicies } from "./token-store.js";

const CREATE_FIELDS = [
  "id",
  "role_name",
  "policies",
  "meta",
  "no_parent",
  "no_default_policy",
  "renewable",
  "lease",
  "ttl",
  "type",
  "explicit_max_ttl",
  "display_name",
  "num_uses",
  "period",
  "entity_alias",
];

/** The token store mounted at `auth/token/`. */
export function createTokenBackend(tokens: TokenStore, policies: PolicyStore): Backend {
  const handlers = new TokenHandlers(tokens, policies);
  return {
    type: "token",
    routes: [
      {
        pattern: /^create-orphan$/,
        fields: CREATE_FIELDS,
        operations: { update: (ctx) => handlers.create(ctx, true) },
      },
      {
        pattern: /^create$/,
        fields: CREATE_FIELDS,
        operations: { update: (ctx) => handlers.create(ctx, false) },
      },
      {
        pattern: /^lookup-self$/,
        fields: ["token"],
        operations: { read: (ctx) => handlers.lookupSelf(ctx), update: (ctx) => handlers.lookupSelf(ctx) },
      },
      {
        pattern: /^lookup$/,
        fields: ["token"],
        operations: { read: (ctx) => handlers.lookup(ctx), update: (ctx) => handlers.lookup(ctx) },
      },
      {
        pattern: /^lookup-accessor$/,
        fields: ["accessor"],
        operations: { update: (ctx) => handlers.lookupAccessor(ctx) },
      },
      {
        pattern: /^renew-self$/,
        fields: ["token", "increment"],
        operations: { update: (ctx) => handlers.renewSelf(ctx) },
      },
      {
        pattern: /^renew$/,
        fields: ["token", "increment"],
        operations: { update: (ctx) => handlers.renew(ctx) },
      },
      { pattern: /^revoke-self$/, fields: [], operations: { update: (ctx) => handlers.revokeSelf(ctx) } },
      { pattern: /^revoke$/, fields: ["token"], operations: { update: (ctx) => handlers.revoke(ctx) } },
      {
        pattern: /^revoke-accessor$/,
        fields: ["accessor"],
        operations: { update: (ctx) => handlers.revokeAccessor(ctx) },
      },
    ],
  };
}

class TokenHandlers {
  constructor(
    private readonly tokens: TokenStore,
    private readonly policies: PolicyStore,
  ) {}

  /** `handleCreateCommon`, for the fields node-vault can send (no roles, no batch tokens). */
  create(ctx: HandlerContext, forceOrphan: boolean): LogicalResult {
    const parent = ctx.token;
    if (!parent) return failure(400, "parent token lookup failed: no parent found");
    if (parent.restricted) return failure(400, "restricted use token cannot generate child tokens");
    const { data } = ctx;
    const isRoot = parent.policies.includes("root");
    if (data.type !== undefined && data.type !== "service" && data.type !== "") {
      return failure(400, `unsupported token type ${JSON.stringify(data.type)} in vault-dev`);
    }
    const numUses = data.num_uses === undefined ? 0 : weakInt(data.num_uses, "num_uses");
    if (numUses < 0) return failure(400, "number of uses cannot be negative");
    const ttlInput = data.ttl ?? data.lease;
    const requestedTtl = ttlInput === undefined ? 0 : parseDurationSeconds(ttlInput);
    if (requestedTtl < 0) return failure(400, "ttl must be positive");
    const explicitMaxTtl =
      data.explicit_max_ttl === undefined ? 0 : parseDurationSeconds(data.explicit_max_ttl);
    if (explicitMaxTtl < 0) return failure(400, "explicit_max_ttl must be positive");
    const period = data.period === undefined ? 0 : parseDurationSeconds(data.period);
    if (period > 0 && !isRoot)
      return failure(400, "root or sudo privileges required to create periodic token");
    const id = data.id === undefined ? "" : weakString(data.id, "id");
    if (id !== "") {
      if (!isRoot) return failure(400, "root or sudo privileges required to specify token id");
      if (this.tokens.lookup(id, ctx.now)) return failure(400, "cannot create a token with a duplicate ID");
    }
    const noParent = data.no_parent === undefined ? false : weakBool(data.no_parent, "no_parent");
    if (noParent && !forceOrphan && !isRoot) {
      return failure(400, "root or sudo privileges required to create orphan token");
    }
    const noDefault =
      data.no_default_policy === undefined ? false : weakBool(data.no_default_policy, "no_default_policy");
    const requested = commaStrings(data.policies, "policies");
    const inherited =
      requested.length > 0 ? requested : parent.policies.filter((p) => !(noDefault && p === "default"));
    const policies = sanitizePolicies(inherited, !noDefault);
    if (!isRoot) {
      const allowed = new Set([...parent.policies, "default"]);
      if (!policies.every((p) => allowed.has(p)))
        return failure(400, "child policies must be subset of parent");
    }
    const meta = parseMeta(data.meta);
    const renewable = data.renewable === undefined ? true : weakBool(data.renewable, "renewable");
    const displayName = data.display_name === undefined ? "" : weakString(data.display_name, "display_name");

    // Vault warns about each policy it does not know, in (sorted) policy order.
    const warnings = policies.filter((p) => !this.policies.has(p)).map((p) => `Policy "${p}" does not exist`);
    let ttl = period > 0 ? period : requestedTtl;
    if (ttl === 0 && !policies.includes("root")) ttl = SYSTEM_MAX_TTL;
    const maxTtl = explicitMaxTtl > 0 ? Math.min(explicitMaxTtl, SYSTEM_MAX_TTL) : SYSTEM_MAX_TTL;
    if (period === 0 && ttl > maxTtl) {
      warnings.push(
        `TTL of "${formatGoDuration(ttl)}" exceeded the effective max_ttl of "${formatGoDuration(maxTtl)}"; TTL value is capped accordingly`,
      );
      ttl = maxTtl;
    }
    const orphan = forceOrphan || noParent;
    const entry = this.tokens.create(
      {
        ...(id !== "" ? { id } : {}),
        policies,
        meta,
        displayName: displayName === "" ? "token" : `token-${displayName.replace(/[^a-zA-Z0-9-]/g, "-")}`,
        numUses,
        ttl,
        renewable,
        explicitMaxTtl,
        period,
        orphan,
        path: forceOrphan ? "auth/token/create-orphan" : "auth/token/create",
        parent: orphan ? null : parent.id,
        entityId: "",
      },
      ctx.now,
    );
    return respond(null, { auth: this.tokens.authBlock(entry, ctx.now), warnings });
  }

  lookupSelf(ctx: HandlerContext): LogicalResult {
    if (!ctx.token) return failure(403, "permission denied");
    return respond(this.tokens.lookupData(ctx.token, ctx.now));
  }

  lookup(ctx: HandlerContext): LogicalResult {
    const id = ctx.data.token === undefined ? "" : weakString(ctx.data.token, "token");
    if (id === "") return this.lookupSelf(ctx);
    const entry = this.tokens.lookup(id, ctx.now);
    if (!entry) return failure(403, "bad token");
    return respond(this.tokens.lookupData(entry, ctx.now));
  }

  lookupAccessor(ctx: HandlerContext): LogicalResult {
    const accessor = ctx.data.accessor === undefined ? "" : weakString(ctx.data.accessor, "accessor");
    if (accessor === "") return failure(400, "missing accessor");
    const entry = this.tokens.lookupByAccessor(accessor, ctx.now);
    if (!entry) return failure(400, "invalid accessor");
    // Looking up by accessor never reveals the token itself.
    return respond({ ...this.tokens.lookupData(entry, ctx.now), id: "" });
  }

  renewSelf(ctx: HandlerContext): LogicalResult {
    if (!ctx.token) return failure(403, "permission denied");
    return this.renewToken(ctx.token, ctx);
  }

  renew(ctx: HandlerContext): LogicalResult {
    const id = ctx.data.token === undefined ? "" : weakString(ctx.data.token, "token");
    if (id === "") return failure(400, "missing token");
    const entry = this.tokens.lookup(id, ctx.now);
    if (!entry) return failure(400, "invalid lease ID");
    return this.renewToken(entry, ctx);
  }

  revokeSelf(ctx: HandlerContext): LogicalResult {
    if (ctx.token) this.tokens.revoke(ctx.token.id);
    return noResponse();
  }

  revoke(ctx: HandlerContext): LogicalResult {
    const id = ctx.data.token === undefined ? "" : weakString(ctx.data.token, "token");
    if (id === "") return failure(400, "missing token");
    this.tokens.revoke(id);
    return noResponse();
  }

  revokeAccessor(ctx: HandlerContext): LogicalResult {
    const accessor = ctx.data.accessor === undefined ? "" : weakString(ctx.data.accessor, "accessor");
    if (accessor === "") return failure(400, "missing accessor");
    const entry = this.tokens.lookupByAccessor(accessor, ctx.now);
    if (!entry) return failure(400, "invalid accessor");
    this.tokens.revoke(entry.id);
    return noResponse();
  }

  private renewToken(entry: TokenEntry, ctx: HandlerContext): LogicalResult {
    const increment = ctx.data.increment === undefined ? 0 : parseDurationSeconds(ctx.data.increment);
    const result = this.tokens.renew(entry, Math.max(0, Math.trunc(increment)), ctx.now);
    if (!result.ok) return failure(400, result.error);
    return respond(null, { auth: this.tokens.authBlock(entry, ctx.now), warnings: result.warnings });
  }
}

function parseMeta(raw: unknown): Record<string, string> | null {
  if (raw === undefined || raw === null) return null;
  if (!isJsonObject(raw)) return null;
  const meta: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) meta[key] = weakString(value, "meta");
  return Object.keys(meta).length > 0 ? meta : null;
}
