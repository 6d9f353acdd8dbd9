import { decodeProtectedHeader, type ProtectedHeaderParameters } from "jose";
import { refuse } from "./refusal.js";

/** Header parameters that point at or embed keys: a token must never choose its own key. */
const KEY_BEARING_HEADERS = ["jku", "x5u", "jwk", "x5c"] as const;
const ACCEPTED_TYP = new Set(["jwt", "jose"]);

/**
 * Decodes and checks the protected header of an identity token: an `alg` from
 * `allowed`, no key-bearing header, `typ` absent, `JWT` or `JOSE` (compared
 * case-insensitively, as RFC 7515 asks), and no `crit` (no extension is understood).
 * @throws LeaseholdError `unauthenticated`
 */
export function checkIdentityHeader(jwt: string, allowed: ReadonlySet<string>): ProtectedHeaderParameters {
  let header: ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(jwt);
  } catch {
    throw refuse("identity token is malformed");
  }
  if (jwt.split(".").length !== 3) throw refuse("identity token is malformed", "not a compact JWS");
  if (typeof header.alg !== "string" || !allowed.has(header.alg)) {
    throw refuse("identity token algorithm not allowed", `alg ${String(header.alg)}`);
  }
  for (const name of KEY_BEARING_HEADERS) {
    if (Object.hasOwn(header, name)) throw refuse(`identity token header "${name}" is not allowed`);
  }
  if (
    header.typ !== undefined &&
    (typeof header.typ !== "string" || !ACCEPTED_TYP.has(header.typ.toLowerCase()))
  ) {
    throw refuse("identity token type not allowed");
  }
  if (Object.hasOwn(header, "crit"))
    throw refuse("identity token has unsupported critical header parameters");
  if (header.kid !== undefined && typeof header.kid !== "string")
    throw refuse("identity token is malformed", "kid");
  return header;
}
