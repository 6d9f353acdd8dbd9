import { createHash, randomUUID } from "node:crypto";
import { decodeProtectedHeader, errors, type JWTPayload, jwtVerify, SignJWT } from "jose";
import { LeaseholdError } from "../errors.js";
import type { RedisClient } from "../redis.js";
import { createDelegationChecker } from "./delegation.js";
import { createLeaseKeyLookup } from "./lease-key-lookup.js";
import type { LeaseTokenKeys } from "./lease-token-keys.js";
import { looksLikeJwt } from "./looks-like-jwt.js";
import { refuse } from "./refusal.js";
import { spiffeIdProblem } from "./spiffe-id.js";
import { refuseOversizedToken } from "./token-size.js";
import type { Delegation, DelegationOptions, LeaseKeyResolver, VerifiedIdentity } from "./types.js";

/** The `typ` header of delegation tokens; it keeps them apart from lease and identity tokens. */
export const DELEGATION_TOKEN_TYP = "lh-delegation+jwt";
/** The `aud` of delegation tokens. */
export const DELEGATION_TOKEN_AUDIENCE = "leasehold:delegation";
/** RFC 8693 §2.1 `grant_type` of a token exchange. */
export const TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";
/** RFC 8693 §3 token type of a JWT (the `subject_token_type` accepted, the `issued_token_type` answered). */
export const JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt";
/** The longest life of a delegation token, seconds. */
export const MAX_DELEGATION_TOKEN_SECONDS = 300;
const ISSUER = "leasehold";
const MAX_SCOPE_ITEMS = 64;
const RESOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface DelegationTokenOptions extends DelegationOptions {
  keys: LeaseTokenKeys;
  /** Keys other sidecars of the cluster publish, so a token minted by one is accepted by all. */
  extraKeyResolver?: LeaseKeyResolver;
  /** Where spent `jti`s are remembered. */
  redis: RedisClient;
  prefix: string;
  /** Life of a minted token, seconds (1..300). @default 120 */
  ttlSeconds?: number;
  /** ms since the epoch. @default Date.now */
  now?: () => number;
}

/** A minted delegation token, in RFC 8693 §2.2.1's terms. */
export interface IssuedDelegation {
  readonly access_token: string;
  readonly issued_token_type: typeof JWT_TOKEN_TYPE;
  readonly token_type: "N_A";
  readonly expires_in: number;
}

export interface DelegationTokens {
  /**
   * Mints a one-time delegation token by which `delegator` (a verified identity) lets `actor`
   * act for it: `sub` is the party acted for (the delegator, or whoever it acts for itself),
   * `act.sub` the actor, nested `act` the delegator and its own prior actors. `scope` may only
   * narrow the delegator's own.
   * @throws LeaseholdError 400 invalid_request naming `audience` or `scope`; 403 policy_denied when the scope widens.
   */
  mint(delegator: VerifiedIdentity, actor: string, scope?: readonly string[]): Promise<IssuedDelegation>;
  /**
   * Verifies a delegation token presented beside `actor`'s own identity: signed by a key of the
   * cluster, of the delegation `typ`, unexpired, naming this actor, its chain acceptable, its
   * `jti` never seen before (spent here, unless `use.oneTime` is false: a read-only request such
   * as `GET /v1/catalog` checks it without spending it, as it does the identity JWT's).
   * @throws LeaseholdError 401 unauthenticated otherwise.
   */
  verify(token: string, actor: VerifiedIdentity, use?: { readonly oneTime?: boolean }): Promise<Delegation>;
}

/** Builds the minting and checking of leasehold's own delegation tokens (RFC 8693 token exchange). */
export function createDelegationTokens(o: DelegationTokenOptions): DelegationTokens {
  const ttl = o.ttlSeconds ?? 120;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_DELEGATION_TOKEN_SECONDS) {
    throw new Error(
      `delegation token ttlSeconds must be an integer from 1 to ${MAX_DELEGATION_TOKEN_SECONDS}`,
    );
  }
  const now = o.now ?? Date.now;
  const lookup = createLeaseKeyLookup(o.keys, o.extraKeyResolver);
  const check = createDelegationChecker(o);

  return {
    async mint(delegator, actor, scope) {
      const problem = spiffeIdProblem(actor);
      if (problem !== undefined) throw invalid("audience", "must be the actor's SPIFFE ID");
      if (actor === delegator.subject)
        throw invalid("audience", "must name another agent than the delegator");
      const granted = narrowed(delegator.delegation?.scope, scope);
      const prior = delegator.delegation;
      // RFC 8693 §4.1: the delegator becomes the most recent prior actor when it acts for someone.
      let act: Record<string, unknown> | undefined;
      if (prior !== undefined) {
        for (const sub of [delegator.subject, ...prior.chain.slice(0, -1)].reverse()) {
          act = { sub, ...(act ? { act } : {}) };
        }
      }
      const claims: JWTPayload = {
        act: { sub: actor, ...(act ? { act } : {}) },
        ...(granted === undefined ? {} : { scope: granted.join(" ") }),
      };
      // The chain the actor will present must pass the same checks as on the way in.
      const chain = check(actor, { ...claims, sub: prior?.onBehalfOf ?? delegator.subject });
      if (chain === undefined) throw new Error("unreachable: a delegation token always has act");
      const { kid, key } = await o.keys.signingKey();
      const iat = Math.floor(now() / 1000);
      const token = await new SignJWT(claims)
        .setProtectedHeader({ alg: "EdDSA", typ: DELEGATION_TOKEN_TYP, kid })
        .setIssuer(ISSUER)
        .setAudience(DELEGATION_TOKEN_AUDIENCE)
        .setSubject(chain.onBehalfOf)
        .setJti(randomUUID())
        .setIssuedAt(iat)
        .setExpirationTime(iat + ttl)
        .sign(key);
      return { access_token: token, issued_token_type: JWT_TOKEN_TYPE, token_type: "N_A", expires_in: ttl };
    },

    async verify(token, actor, use) {
      if (actor.delegation !== undefined) {
        throw refuse("a delegated identity cannot present a delegation token besides");
      }
      const kid = delegationTokenKid(token);
      const key = await lookup(kid);
      if (key === undefined) throw refuse("delegation token signing key unknown");
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key, {
          algorithms: ["EdDSA"],
          typ: DELEGATION_TOKEN_TYP,
          issuer: ISSUER,
          audience: DELEGATION_TOKEN_AUDIENCE,
          requiredClaims: ["exp", "iat", "jti", "sub"],
          currentDate: new Date(now()),
        }));
      } catch (err) {
        if (err instanceof errors.JWTExpired) throw refuse("delegation token expired");
        throw refuse("delegation token invalid");
      }
      if (typeof payload.exp !== "number" || typeof payload.iat !== "number") {
        throw refuse("delegation token invalid");
      }
      if (payload.exp - payload.iat > MAX_DELEGATION_TOKEN_SECONDS)
        throw refuse("delegation token lives too long");
      const act = payload.act as { sub?: unknown } | undefined;
      if (act?.sub !== actor.subject) throw refuse("delegation token names another actor");
      const delegation = check(actor.subject, payload as Record<string, unknown>);
      if (delegation === undefined) throw refuse("delegation token invalid");
      const id = createHash("sha256").update(String(payload.jti)).digest("base64url");
      const ttlMs = Math.max(1000, payload.exp * 1000 - now() + 1000);
      const spent = `${o.prefix}dljti:${id}`;
      const fresh =
        use?.oneTime === false
          ? (await o.redis.exists(spent)) === 0
          : (await o.redis.set(spent, "1", "PX", ttlMs, "NX")) === "OK";
      if (!fresh) throw refuse("delegation token was already used (replay)");
      return delegation;
    },
  };
}

/** The `kid` of a token whose header is a delegation token's; refused otherwise, before any key lookup. */
function delegationTokenKid(token: string): string {
  if (typeof token !== "string" || token.length === 0) throw refuse("delegation token is malformed");
  refuseOversizedToken(token, "delegation token");
  if (!looksLikeJwt(token)) throw refuse("delegation token is malformed");
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw refuse("delegation token is malformed");
  }
  if (typeof header.typ !== "string" || header.typ.toLowerCase() !== DELEGATION_TOKEN_TYP) {
    throw refuse("delegation token type not allowed");
  }
  if (header.alg !== "EdDSA") throw refuse("delegation token algorithm not allowed");
  if (typeof header.kid !== "string" || header.kid.length === 0)
    throw refuse("delegation token signing key unknown");
  return header.kid;
}

/** The scope granted: the requested one, which must fit inside the delegator's own when it has one. */
function narrowed(
  own: readonly string[] | undefined,
  requested: readonly string[] | undefined,
): string[] | undefined {
  if (requested === undefined) return own === undefined ? undefined : [...own];
  if (
    requested.length === 0 ||
    requested.length > MAX_SCOPE_ITEMS ||
    !requested.every((s) => RESOURCE_NAME.test(s))
  ) {
    throw invalid("scope", "must be 1 to 64 space-separated resource names");
  }
  if (own !== undefined) {
    const allowed = new Set(own);
    if (!requested.every((s) => allowed.has(s))) {
      throw new LeaseholdError("policy_denied", "scope widens the delegator's own scope");
    }
  }
  return [...new Set(requested)];
}

function invalid(field: string, why: string): LeaseholdError {
  return new LeaseholdError("invalid_request", `${field}: ${why}`);
}

/** The parties of one exchange, for the audit record (no token in it). */
export interface ExchangeOutcome {
  readonly delegator: string;
  readonly actor: string;
  readonly onBehalfOf: string;
  readonly scope?: readonly string[] | undefined;
  readonly issued: IssuedDelegation;
}

/** RFC 8693 §2.1 members a JSON body of `POST /v1/token-exchange` may carry. */
const EXCHANGE_MEMBERS = new Set([
  "grant_type",
  "subject_token",
  "subject_token_type",
  "audience",
  "scope",
  "requested_token_type",
]);

/**
 * The token exchange of `POST /v1/token-exchange` (RFC 8693 §2.1, a JSON body): the delegator's
 * own identity JWT as `subject_token` (verified by `identity`, one-time when the sidecar requires
 * it), the actor's SPIFFE ID as `audience`, an optional `scope` (space-separated resource names)
 * that only narrows the delegator's own.
 * `checkDelegator` runs on the verified delegator before anything is minted (the HTTP layer
 * refuses there a delegator whose key is pinned to other local callers).
 * @throws LeaseholdError 400 invalid_request naming the first bad member; 401 for a bad subject
 * token; 403 policy_denied for a widening scope.
 */
export async function exchangeToken(
  body: unknown,
  identity: { verify(jwt: string): Promise<VerifiedIdentity> },
  tokens: DelegationTokens,
  checkDelegator?: (delegator: VerifiedIdentity) => Promise<void>,
): Promise<ExchangeOutcome> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new LeaseholdError("invalid_request", "body: must be a JSON object");
  }
  const b = body as Record<string, unknown>;
  for (const name of Object.keys(b)) {
    if (!EXCHANGE_MEMBERS.has(name))
      throw invalid(name.slice(0, 32).replace(/[^\w.-]/g, "?"), "is not allowed");
  }
  if (b.grant_type !== TOKEN_EXCHANGE_GRANT) throw invalid("grant_type", `must be ${TOKEN_EXCHANGE_GRANT}`);
  if (typeof b.subject_token !== "string" || b.subject_token.length === 0) {
    throw invalid("subject_token", "must be the delegator's identity JWT");
  }
  if (b.subject_token_type !== JWT_TOKEN_TYPE)
    throw invalid("subject_token_type", `must be ${JWT_TOKEN_TYPE}`);
  if (b.requested_token_type !== undefined && b.requested_token_type !== JWT_TOKEN_TYPE) {
    throw invalid("requested_token_type", `must be ${JWT_TOKEN_TYPE}`);
  }
  if (typeof b.audience !== "string" || spiffeIdProblem(b.audience) !== undefined) {
    throw invalid("audience", "must be the actor's SPIFFE ID");
  }
  let scope: string[] | undefined;
  if (b.scope !== undefined) {
    if (typeof b.scope !== "string" || b.scope.length > 2000) throw invalid("scope", "must be a string");
    scope = b.scope.split(" ").filter((s) => s.length > 0);
  }
  const delegator = await identity.verify(b.subject_token);
  await checkDelegator?.(delegator);
  const issued = await tokens.mint(delegator, b.audience, scope);
  const claims = decodeJwtClaims(issued.access_token);
  return {
    delegator: delegator.subject,
    actor: b.audience,
    onBehalfOf: String(claims.sub),
    scope: typeof claims.scope === "string" ? claims.scope.split(" ") : undefined,
    issued,
  };
}

function decodeJwtClaims(token: string): Record<string, unknown> {
  const part = token.split(".")[1] ?? "";
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as Record<string, unknown>;
}
