import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { type CryptoKey, importJWK, SignJWT } from "jose";
import type { MintIdentityAssertionOptions } from "./types.js";

const REGISTERED_CLAIMS = new Set(["sub", "aud", "iat", "exp", "jti", "nbf", "iss"]);

/**
 * Signs an identity JWT with an agent's key file: EdDSA, header `kid` and
 * `typ: "JWT"`, claims `sub` (the key's subject), `aud`, `iat`, `exp`
 * (`iat + ttlSeconds`) and a random `jti`.
 * @throws Error when the key file is not an Ed25519 private JWK with `sub` and `kid`,
 *   or `extraClaims` tries to set a registered claim.
 */
export async function mintIdentityAssertion(opts: MintIdentityAssertionOptions): Promise<string> {
  const ttl = opts.ttlSeconds ?? 60;
  if (!Number.isInteger(ttl) || ttl <= 0) throw new Error("ttlSeconds must be a positive integer");
  if (typeof opts.audience !== "string" || opts.audience.length === 0)
    throw new Error("audience is required");
  const jwk: unknown = JSON.parse(await readFile(opts.keyFile, "utf8"));
  const { sub, kid, kty, crv, d } = (jwk ?? {}) as Record<string, unknown>;
  if (kty !== "OKP" || crv !== "Ed25519" || typeof d !== "string") {
    throw new Error(`key file ${opts.keyFile} is not an Ed25519 private JWK`);
  }
  if (typeof sub !== "string" || typeof kid !== "string") {
    throw new Error(`key file ${opts.keyFile} lacks "sub" or "kid"`);
  }
  const extra = opts.extraClaims ?? {};
  for (const name of Object.keys(extra)) {
    if (REGISTERED_CLAIMS.has(name)) throw new Error(`extraClaims may not set "${name}"`);
  }
  const key = (await importJWK(jwk as Record<string, string>, "EdDSA")) as CryptoKey;
  const iat = Math.floor((opts.now ?? Date.now)() / 1000);
  return new SignJWT({ ...extra })
    .setProtectedHeader({ alg: "EdDSA", kid, typ: "JWT" })
    .setSubject(sub)
    .setAudience(opts.audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl)
    .setJti(randomUUID())
    .sign(key);
}
