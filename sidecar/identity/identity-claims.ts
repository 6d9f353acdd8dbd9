import { refuse } from "./refusal.js";

export interface ClaimRules {
  audience: string;
  maxTokenLifetime: number;
  clockSkew: number;
  /** Seconds since the epoch. */
  nowSeconds: number;
}

/**
 * Checks the registered claims of an identity token: exactly one `aud` equal
 * to the configured audience, numeric `exp` and `iat`, `exp` not passed (with
 * skew), `iat` not in the future beyond skew, `nbf` (if any) reached, and
 * `exp - iat` within the maximum lifetime.
 * @throws LeaseholdError `unauthenticated`
 */
export function checkIdentityClaims(claims: Record<string, unknown>, rules: ClaimRules): void {
  const { aud, exp, iat, nbf } = claims;
  if (aud === undefined) throw refuse("identity token audience missing");
  const audiences = Array.isArray(aud) ? aud : [aud];
  if (audiences.length !== 1) throw refuse("identity token must name exactly one audience");
  if (audiences[0] !== rules.audience) throw refuse("identity token audience mismatch");
  if (!isNumericDate(exp)) throw refuse("identity token exp claim missing or invalid");
  if (!isNumericDate(iat)) throw refuse("identity token iat claim missing or invalid");
  if (nbf !== undefined && !isNumericDate(nbf)) throw refuse("identity token nbf claim invalid");
  const { nowSeconds: now, clockSkew: skew } = rules;
  if (now >= exp + skew) throw refuse("identity token expired");
  if (iat > now + skew) throw refuse("identity token issued in the future");
  if (nbf !== undefined && nbf > now + skew) throw refuse("identity token not yet valid");
  if (exp <= iat) throw refuse("identity token expires before it was issued");
  if (exp - iat > rules.maxTokenLifetime) {
    throw refuse("identity token lifetime exceeds the maximum", `exp - iat = ${exp - iat}s`);
  }
}

function isNumericDate(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0;
}
