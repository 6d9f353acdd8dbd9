import { type JSONWebKeySet, type JWTPayload, createLocalJWKSet, decodeJwt, jwtVerify } from "jose";
import { type Backend, type HandlerContext, type LogicalResult, failure, respond } from "./backend.js";
import { weakString } from "./go-format.js";
import { SYSTEM_MAX_TTL, type TokenStore, entityIdFor, sanitizePolicies } from "./token-store.js";

/** A JWT role as given in the server options. */
export interface JwtRole {
  readonly jwks: { keys: object[] };
  readonly boundAudiences?: string[];
  readonly boundSubject?: string;
  /** Claim naming the user (`user_claim`); default `sub`. */
  readonly userClaim?: string;
  readonly policies: string[];
  /** Seconds; default the system default (768h). */
  readonly tokenTtl?: number;
}

/** The JWT auth method mounted at `auth/jwt/`: login only, roles fixed at start. */
export function createJwtBackend(roles: Readonly<Record<string, JwtRole>>, tokens: TokenStore): Backend {
  const keySets = new Map<string, ReturnType<typeof createLocalJWKSet>>();
  for (const [name, role] of Object.entries(roles)) {
    // The option is typed loosely so callers can pass exported JWKs as they are.
    keySets.set(name, createLocalJWKSet(role.jwks as JSONWebKeySet));
  }
  return {
    type: "jwt",
    routes: [
      {
        pattern: /^login$/,
        fields: ["role", "jwt"],
        unauthenticated: true,
        operations: { update: (ctx) => login(ctx, roles, keySets, tokens) },
      },
    ],
  };
}

async function login(
  ctx: HandlerContext,
  roles: Readonly<Record<string, JwtRole>>,
  keySets: ReadonlyMap<string, ReturnType<typeof createLocalJWKSet>>,
  tokens: TokenStore,
): Promise<LogicalResult> {
  const roleName = ctx.data.role === undefined ? "" : weakString(ctx.data.role, "role");
  if (roleName === "") return failure(400, "missing role");
  const role = Object.hasOwn(roles, roleName) ? roles[roleName] : undefined;
  const keySet = keySets.get(roleName);
  if (!role || !keySet) return failure(400, `role ${JSON.stringify(roleName)} could not be found`);
  const jwt = ctx.data.jwt === undefined ? "" : weakString(ctx.data.jwt, "jwt");
  if (jwt === "") return failure(400, "missing token");

  const audiences = role.boundAudiences ?? [];
  let payload: JWTPayload;
  try {
    if (audiences.length === 0 && decodeJwt(jwt).aud !== undefined) {
      return failure(400, "audience claim found in JWT but no audiences bound to the role");
    }
    ({ payload } = await jwtVerify(jwt, keySet, {
      ...(audiences.length > 0 ? { audience: audiences } : {}),
      ...(role.boundSubject ? { subject: role.boundSubject } : {}),
      currentDate: new Date(ctx.now),
    }));
  } catch (err) {
    return failure(400, `error validating token: ${err instanceof Error ? err.message : String(err)}`);
  }

  const userClaim = role.userClaim ?? "sub";
  const user = payload[userClaim];
  if (typeof user !== "string" && typeof user !== "number") {
    return failure(400, `claim ${JSON.stringify(userClaim)} not found in token`);
  }
  const entry = tokens.create(
    {
      policies: sanitizePolicies(role.policies, true),
      meta: { role: roleName },
      displayName: `jwt-${user}`,
      numUses: 0,
      ttl: role.tokenTtl !== undefined && role.tokenTtl > 0 ? role.tokenTtl : SYSTEM_MAX_TTL,
      renewable: true,
      explicitMaxTtl: 0,
      period: 0,
      orphan: true,
      path: "auth/jwt/login",
      parent: null,
      entityId: entityIdFor("auth/jwt/", String(user)),
    },
    ctx.now,
  );
  return respond(null, { auth: tokens.authBlock(entry, ctx.now) });
}
