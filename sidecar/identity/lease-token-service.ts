import { randomUUID } from "node:crypto";
import { type CryptoKey, decodeProtectedHeader, errors, type JWTPayload, jwtVerify, SignJWT } from "jose";
import { LeaseholdError } from "../errors.js";
import { isJwkThumbprint } from "./dpop.js";
import { createLeaseKeyLookup } from "./lease-key-lookup.js";
import type { LeaseTokenKeys } from "./lease-token-keys.js";
import { looksLikeJwt } from "./looks-like-jwt.js";
import { refuse } from "./refusal.js";
import { refuseOversizedToken } from "./token-size.js";
import type { LeaseKeyResolver, LeaseTokenInput, LeaseTokenService, VerifiedLeaseToken } from "./types.js";
import { tokenDigest, type VerifiedEntry, VerifiedTokenCache } from "./verified-token-cache.js";

/** The `typ` header of every lease token; it keeps lease tokens and identity tokens apart. */
export const LEASE_TOKEN_TYP = "lh-lease+jwt";
/** The `aud` of every lease token. */
export const LEASE_TOKEN_AUDIENCE = "leasehold:lease";
/** The default `iss` of lease tokens. */
export const LEASE_TOKEN_ISSUER = "leasehold";

export interface LeaseTokenServiceOptions {
  keys: LeaseTokenKeys;
  /** Finds keys published by other sidecars of the cluster, for kids this one does not hold. */
  extraKeyResolver?: LeaseKeyResolver;
  /** @default "leasehold" */
  issuer?: string;
  /** ms since the epoch. @default Date.now */
  now?: () => number;
  /** Tolerance applied to `exp`, seconds; the lease store is the authority on expiry. @default 0 */
  clockSkew?: number;
  /**
   * How often minting looks at the key file for a rotation made by another process
   * (`leasehold keys rotate`), ms; meanwhile the replaced key signs, and it keeps verifying.
   * 0: before every mint. @default 1000
   */
  keyCheckIntervalMs?: number;
  /**
   * How many verified tokens are remembered, so that a token's next use skips the signature check
   * (see VerifiedTokenCache); 0: every use verifies. @default 4096
   */
  verifiedCacheSize?: number;
}

/** Refuses a mint whose input would make a token that cannot be checked against its lease. */
function checkMintInput(input: LeaseTokenInput): void {
  for (const name of ["leaseId", "agent", "resource", "account"] as const) {
    if (typeof input[name] !== "string" || input[name].length === 0) {
      throw new Error(`lease token ${name} must be a non-empty string`);
    }
  }
  if (!Number.isFinite(input.expiresAt)) throw new Error("lease token expiresAt must be a number");
  if (input.jkt !== undefined && !isJwkThumbprint(input.jkt)) {
    throw new Error("lease token jkt must be an RFC 7638 SHA-256 thumbprint");
  }
}

/** Refuses what is not a string of a lease token's size, before anything else looks at it. */
function checkTokenShape(token: string): void {
  if (typeof token !== "string") throw refuse("lease token is malformed");
  refuseOversizedToken(token, "lease token");
}

/** The `kid` of a token whose header is a lease token's (typ, alg); refused otherwise, before any key lookup. */
function leaseTokenKid(token: string): string {
  if (!looksLikeJwt(token)) throw refuse("lease token is malformed");
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw refuse("lease token is malformed");
  }
  if (typeof header.typ !== "string" || header.typ.toLowerCase() !== LEASE_TOKEN_TYP) {
    throw refuse("lease token type not allowed");
  }
  if (header.alg !== "EdDSA") throw refuse("lease token algorithm not allowed");
  const kid = header.kid;
  if (typeof kid !== "string" || kid.length === 0) throw refuse("lease token signing key unknown");
  return kid;
}

/** The verified claims as the lease store's terms; a token missing one is refused. */
function verifiedClaims(payload: JWTPayload, kid: string): VerifiedLeaseToken {
  const { sub, lid, res, acc, exp, cnf } = payload;
  if (typeof sub !== "string" || typeof lid !== "string" || typeof res !== "string" || exp === undefined) {
    throw refuse("lease token claims incomplete");
  }
  const verified: VerifiedLeaseToken = {
    leaseId: lid,
    agent: sub,
    resource: res,
    account: typeof acc === "string" ? acc : "",
    expiresAt: exp * 1000,
    kid,
  };
  if (cnf !== undefined) verified.jkt = boundKey(cnf);
  return verified;
}

/** Builds the service that mints and verifies lease tokens (EdDSA JWTs, `typ: lh-lease+jwt`). */
export function createLeaseTokenService(opts: LeaseTokenServiceOptions): LeaseTokenService {
  const issuer = opts.issuer ?? LEASE_TOKEN_ISSUER;
  const now = opts.now ?? Date.now;
  const keyFor = createLeaseKeyLookup(opts.keys, opts.extraKeyResolver);
  const keyCheckEvery = opts.keyCheckIntervalMs ?? 1000;
  // A monotonic clock: `now` may be pinned (tests) or jump.
  let keysCheckedAt = Number.NEGATIVE_INFINITY;
  const verifiedTokens = new VerifiedTokenCache(opts.verifiedCacheSize);
  const skewSeconds = opts.clockSkew ?? 0;

  /**
   * The claims of a token this process verified before, checked as jose checks them now (the
   * same key still verifies its kid; `nbf` and `exp` against the clock); undefined when it must be
   * verified afresh.
   * @throws LeaseholdError lease_expired, as the full verification would
   */
  async function remembered(digest: string): Promise<VerifiedLeaseToken | undefined> {
    const hit = verifiedTokens.get(digest);
    if (hit === undefined) return undefined;
    if ((await keyFor(hit.claims.kid)) !== hit.key) {
      // The key was removed or replaced: the token is verified afresh (and refused if it no longer verifies).
      verifiedTokens.delete(digest);
      return undefined;
    }
    const nowSeconds = Math.floor(now() / 1000);
    if (hit.exp <= nowSeconds - skewSeconds) {
      verifiedTokens.delete(digest);
      throw new LeaseholdError("lease_expired", "lease token expired");
    }
    // A clock set back (or a pinned one) can put the token before its nbf again.
    if (hit.nbf !== undefined && hit.nbf > nowSeconds + skewSeconds) return undefined;
    return hit.claims;
  }

  return {
    async mint(input: LeaseTokenInput): Promise<string> {
      checkMintInput(input);
      if (performance.now() - keysCheckedAt >= keyCheckEvery) {
        keysCheckedAt = performance.now();
        await opts.keys.refresh();
      }
      const { kid, key } = await opts.keys.signingKey();
      const claims: JWTPayload = { lid: input.leaseId, res: input.resource, acc: input.account };
      // RFC 9449 §6.1: the token is bound to the agent's DPoP key.
      if (input.jkt !== undefined) claims.cnf = { jkt: input.jkt };
      return (
        new SignJWT(claims)
          .setProtectedHeader({ alg: "EdDSA", kid, typ: LEASE_TOKEN_TYP })
          .setIssuer(issuer)
          .setSubject(input.agent)
          .setAudience(LEASE_TOKEN_AUDIENCE)
          .setJti(randomUUID())
          .setIssuedAt(Math.floor(now() / 1000))
          // Rounded down so the token never outlives the lease.
          .setExpirationTime(Math.floor(input.expiresAt / 1000))
          .sign(key)
      );
    },

    async verify(token: string): Promise<VerifiedLeaseToken> {
      checkTokenShape(token);
      const digest = verifiedTokens.enabled ? tokenDigest(token) : undefined;
      const known = digest === undefined ? undefined : await remembered(digest);
      if (known !== undefined) return known;
      const kid = leaseTokenKid(token);
      const key = await keyFor(kid);
      if (key === undefined) throw refuse("lease token signing key unknown");
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key, {
          algorithms: ["EdDSA"],
          issuer,
          audience: LEASE_TOKEN_AUDIENCE,
          typ: LEASE_TOKEN_TYP,
          currentDate: new Date(now()),
          clockTolerance: skewSeconds,
          requiredClaims: ["sub", "exp", "iat", "jti", "lid", "res"],
        }));
      } catch (err) {
        throw mapVerifyError(err);
      }
      const claims = Object.freeze(verifiedClaims(payload, kid));
      if (digest !== undefined) verifiedTokens.set(digest, rememberedEntry(claims, key, payload));
      return claims;
    },

    async keyKnown(kid: string): Promise<boolean> {
      return (await keyFor(kid)) !== undefined;
    },
  };
}

function rememberedEntry(claims: VerifiedLeaseToken, key: CryptoKey, payload: JWTPayload): VerifiedEntry {
  return { claims, key, exp: payload.exp as number, nbf: payload.nbf };
}

/** The `cnf.jkt` of a bound token; any other confirmation method is refused, never ignored. */
function boundKey(cnf: unknown): string {
  if (typeof cnf !== "object" || cnf === null || Array.isArray(cnf))
    throw refuse("lease token cnf claim invalid");
  const members = Object.keys(cnf);
  const { jkt } = cnf as { jkt?: unknown };
  if (members.length !== 1 || !isJwkThumbprint(jkt)) throw refuse("lease token cnf claim invalid");
  return jkt;
}

function mapVerifyError(err: unknown): LeaseholdError {
  if (err instanceof errors.JWTExpired) return new LeaseholdError("lease_expired", "lease token expired");
  if (err instanceof errors.JWSSignatureVerificationFailed) return refuse("lease token signature invalid");
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === "aud") return refuse("lease token audience mismatch");
    if (err.claim === "iss") return refuse("lease token issuer mismatch");
    return refuse("lease token claims invalid", `${err.claim}: ${err.reason}`);
  }
  return refuse("lease token is malformed", String(err));
}
