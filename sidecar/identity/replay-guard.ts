import { createHash } from "node:crypto";
import { LeaseholdError } from "../errors.js";
import type { RedisClient } from "../redis.js";
import type { IdentityUse, IdentityVerifier, VerifiedIdentity } from "./types.js";

export interface ReplayGuardOptions {
  redis: RedisClient;
  prefix: string;
  /** Tolerance added to the token's remaining lifetime, seconds. */
  clockSkew: number;
  now?: () => number;
}

/** The refusal of an identity token whose one-time `jti` was spent before. */
export function identityReplayed(): LeaseholdError {
  return new LeaseholdError("unauthenticated", "identity token was already used (replay)");
}

/**
 * One-time identity tokens (`identity.oneTimeJti`): on a state-changing request (the default,
 * `use.oneTime` not false) the token's `jti` is accepted once, remembered in Redis until the token
 * expires (plus the clock skew), so a captured assertion cannot be replayed; a token without `jti`
 * is refused there. A read-only request (`oneTime: false`) neither needs nor spends the `jti`.
 * With `deferSpend` the `jti` is checked but its key is handed back (`spend`) for the caller to
 * spend in its own first Redis round trip, refusing a replay with {@link identityReplayed}.
 */
export function withReplayGuard(verifier: IdentityVerifier, o: ReplayGuardOptions): IdentityVerifier {
  const now = o.now ?? Date.now;
  return {
    async verify(jwt: string, use?: IdentityUse): Promise<VerifiedIdentity> {
      const identity = await verifier.verify(jwt, use);
      if (use?.oneTime === false) return identity;
      const jti = identity.claims.jti;
      if (typeof jti !== "string" || jti === "") {
        throw new LeaseholdError(
          "unauthenticated",
          "identity token has no jti (this sidecar requires one-time tokens)",
        );
      }
      const exp = Number(identity.claims.exp) * 1000;
      const ttl = Math.max(1000, exp - now() + o.clockSkew * 1000);
      const id = createHash("sha256").update(`${identity.subject}\n${jti}`).digest("base64url");
      const spend = { key: `${o.prefix}idjti:${id}`, ttlMs: ttl };
      if (use?.deferSpend === true) return Object.assign({}, identity, { spend });
      const first = await o.redis.set(spend.key, "1", "PX", ttl, "NX");
      if (first !== "OK") throw identityReplayed();
      return identity;
    },
  };
}
