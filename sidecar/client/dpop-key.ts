import { createHash, randomUUID } from "node:crypto";
import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";

/** An agent's DPoP key pair (RFC 9449) and the proofs it signs. */
export interface DpopKey {
  /** RFC 7638 thumbprint of the public key: the `cnf.jkt` of tokens bound to it. */
  readonly jkt: string;
  /**
   * Signs a fresh proof for one request: `htm`, `htu`, `iat` now, a random `jti`, and
   * `ath` when an access token is presented with the request.
   */
  proof(htm: string, htu: string, accessToken?: string): Promise<string>;
}

/**
 * Creates a new Ed25519 DPoP key. The private key cannot be exported: tokens bound to it are
 * usable by this process only.
 */
export async function createDpopKey(now: () => number = Date.now): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: false });
  const full = await exportJWK(publicKey);
  const jwk: JWK = { kty: full.kty, crv: full.crv, x: full.x };
  const jkt = await calculateJwkThumbprint(jwk, "sha256");
  return {
    jkt,
    proof: (htm, htu, accessToken) => signProof(privateKey, jwk, htm, htu, now, accessToken),
  };
}

function signProof(
  key: CryptoKey,
  jwk: JWK,
  htm: string,
  htu: string,
  now: () => number,
  accessToken?: string,
): Promise<string> {
  const claims: Record<string, string> = { htm, htu, jti: randomUUID() };
  if (accessToken !== undefined) {
    claims.ath = createHash("sha256").update(accessToken, "ascii").digest("base64url");
  }
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "EdDSA", typ: "dpop+jwt", jwk })
    .setIssuedAt(Math.floor(now() / 1000))
    .sign(key);
}
