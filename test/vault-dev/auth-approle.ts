import { randomUUID } from "node:crypto";
import {
  type Backend,
  type HandlerContext,
  type LogicalResult,
  failure,
  noResponse,
  respond,
} from "./backend.js";
import { commaStrings, parseDurationSeconds, weakBool, weakString } from "./go-format.js";
import { compareGoStrings } from "./http-util.js";
import {
  SYSTEM_MAX_TTL,
  type TokenStore,
  entityIdFor,
  randomBase62,
  sanitizePolicies,
} from "./token-store.js";

/** One AppRole role. Secret IDs map to their accessors. */
export interface ApproleRole {
  roleId: string;
  secretIds: Record<string, string>;
  policies: string[];
  /** Seconds; 0 = the system default (768h). */
  tokenTtl: number;
  bindSecretId: boolean;
}

/** Roles by name. */
export type ApproleState = Record<string, ApproleRole>;

const ROLE_FIELDS = [
  "role_name",
  "bind_secret_id",
  "secret_id_bound_cidrs",
  "secret_id_num_uses",
  "secret_id_ttl",
  "token_ttl",
  "token_max_ttl",
  "token_policies",
  "policies",
  "token_num_uses",
  "token_type",
  "period",
  "token_period",
  "token_bound_cidrs",
  "local_secret_ids",
];

/** The AppRole auth method mounted at `auth/approle/`: login plus the role helper endpoints. */
export function createApproleBackend(roles: ApproleState, tokens: TokenStore, onChange: () => void): Backend {
  const handlers = new ApproleHandlers(roles, tokens, onChange);
  return {
    type: "approle",
    routes: [
      {
        pattern: /^login$/,
        fields: ["role_id", "secret_id"],
        unauthenticated: true,
        operations: { update: (ctx) => handlers.login(ctx) },
      },
      { pattern: /^role\/?$/, fields: [], operations: { list: () => handlers.listRoles() } },
      {
        pattern: /^role\/(?<role_name>[^/]+)$/,
        fields: ROLE_FIELDS,
        exists: (ctx) => Object.hasOwn(roles, ctx.params.role_name ?? ""),
        operations: {
          read: (ctx) => handlers.readRole(ctx),
          update: (ctx) => handlers.writeRole(ctx),
          delete: (ctx) => handlers.deleteRole(ctx),
        },
      },
      {
        pattern: /^role\/(?<role_name>[^/]+)\/role-id$/,
        fields: ["role_name", "role_id"],
        operations: { read: (ctx) => handlers.readRoleId(ctx), update: (ctx) => handlers.writeRoleId(ctx) },
      },
      {
        pattern: /^role\/(?<role_name>[^/]+)\/secret-id$/,
        fields: ["role_name", "metadata", "cidr_list", "token_bound_cidrs", "num_uses", "ttl"],
        operations: { update: (ctx) => handlers.generateSecretId(ctx) },
      },
    ],
  };
}

class ApproleHandlers {
  constructor(
    private readonly roles: ApproleState,
    private readonly tokens: TokenStore,
    private readonly onChange: () => void,
  ) {}

  /** `pathLoginUpdate`: role ID first, then the secret ID; login tokens are orphans. */
  login(ctx: HandlerContext): LogicalResult {
    const roleId = ctx.data.role_id === undefined ? "" : weakString(ctx.data.role_id, "role_id").trim();
    if (roleId === "") return failure(400, "missing role_id");
    const found = Object.entries(this.roles).find(([, role]) => role.roleId === roleId);
    if (!found) return failure(400, "invalid role ID");
    const [name, role] = found;
    if (role.bindSecretId) {
      const secretId =
        ctx.data.secret_id === undefined ? "" : weakString(ctx.data.secret_id, "secret_id").trim();
      if (secretId === "") return failure(400, "missing secret_id");
      if (!Object.hasOwn(role.secretIds, secretId)) return failure(400, "invalid secret id");
    }
    const entry = this.tokens.create(
      {
        policies: sanitizePolicies(role.policies, true),
        meta: { role_name: name },
        displayName: "approle",
        numUses: 0,
        ttl: role.tokenTtl > 0 ? role.tokenTtl : SYSTEM_MAX_TTL,
        renewable: true,
        explicitMaxTtl: 0,
        period: 0,
        orphan: true,
        path: "auth/approle/login",
        parent: null,
        entityId: entityIdFor("auth/approle/", role.roleId),
      },
      ctx.now,
    );
    return respond(null, { auth: this.tokens.authBlock(entry, ctx.now) });
  }

  listRoles(): LogicalResult {
    const keys = Object.keys(this.roles).sort(compareGoStrings);
    return respond(keys.length > 0 ? { keys } : {});
  }

  readRole(ctx: HandlerContext): LogicalResult {
    const role = this.role(ctx);
    if (!role) return noResponse();
    return respond({
      bind_secret_id: role.bindSecretId,
      policies: [...role.policies],
      secret_id_num_uses: 0,
      secret_id_ttl: 0,
      token_policies: [...role.policies],
      token_ttl: role.tokenTtl,
      token_max_ttl: 0,
      token_num_uses: 0,
      token_type: "default",
    });
  }

  writeRole(ctx: HandlerContext): LogicalResult {
    const name = ctx.params.role_name ?? "";
    const role = this.role(ctx) ?? {
      roleId: randomUUID(),
      secretIds: {},
      policies: [],
      tokenTtl: 0,
      bindSecretId: true,
    };
    const { data } = ctx;
    const policies = data.token_policies ?? data.policies;
    if (policies !== undefined) role.policies = commaStrings(policies, "token_policies");
    if (data.token_ttl !== undefined) role.tokenTtl = Math.trunc(parseDurationSeconds(data.token_ttl));
    if (data.bind_secret_id !== undefined)
      role.bindSecretId = weakBool(data.bind_secret_id, "bind_secret_id");
    this.roles[name] = role;
    this.onChange();
    return noResponse();
  }

  deleteRole(ctx: HandlerContext): LogicalResult {
    delete this.roles[ctx.params.role_name ?? ""];
    this.onChange();
    return noResponse();
  }

  readRoleId(ctx: HandlerContext): LogicalResult {
    const role = this.role(ctx);
    if (!role) return noResponse();
    return respond({ role_id: role.roleId });
  }

  writeRoleId(ctx: HandlerContext): LogicalResult {
    const role = this.role(ctx);
    if (!role) return failure(400, `role ${JSON.stringify(ctx.params.role_name ?? "")} does not exist`);
    const roleId = ctx.data.role_id === undefined ? "" : weakString(ctx.data.role_id, "role_id");
    if (roleId === "") return failure(400, "missing role_id");
    role.roleId = roleId;
    this.onChange();
    return noResponse();
  }

  generateSecretId(ctx: HandlerContext): LogicalResult {
    const role = this.role(ctx);
    if (!role) return failure(400, `role ${JSON.stringify(ctx.params.role_name ?? "")} does not exist`);
    const secretId = randomUUID();
    const accessor = randomUUID();
    role.secretIds[secretId] = accessor;
    this.onChange();
    return respond({
      secret_id: secretId,
      secret_id_accessor: accessor,
      secret_id_num_uses: 0,
      secret_id_ttl: 0,
    });
  }

  private role(ctx: HandlerContext): ApproleRole | undefined {
    const name = ctx.params.role_name ?? "";
    return Object.hasOwn(this.roles, name) ? this.roles[name] : undefined;
  }
}

/** A role from the server options (fixed role ID and secret ID). */
export function approleFromOptions(options: {
  roleId: string;
  secretId: string;
  policies: string[];
  tokenTtl?: number;
}): ApproleRole {
  return {
    roleId: options.roleId,
    secretIds: { [options.secretId]: randomBase62(24) },
    policies: [...options.policies],
    tokenTtl: options.tokenTtl ?? 0,
    bindSecretId: true,
  };
}
