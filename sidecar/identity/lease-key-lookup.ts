import { type CryptoKey, importJWK, type JWK } from "jose";
import { LeaseholdError } from "../errors.js";
import type { LeaseTokenKeys } from "./lease-token-keys.js";
import type { LeaseKeyResolver } from "./types.js";

const MAX_CACHED_EXTERNAL_KEYS = 256;

/** Finds the public key of a lease token's `kid`; undefined when no one holds it. */
export type LeaseKeyLookup = (kid: string) => Promise<CryptoKey | undefined>;

/**
 * The verification key of `kid`: this sidecar's own keys first (re-reading the key file once,
 * for a `leasehold keys rotate` made by another process), then the keys other sidecars of the
 * cluster publish (`extraKeyResolver`), of which only public Ed25519 members are ever imported.
 * @throws LeaseholdError upstream_unavailable (retryable) when the resolver fails.
 */
export function createLeaseKeyLookup(
  keys: LeaseTokenKeys,
  extraKeyResolver?: LeaseKeyResolver,
): LeaseKeyLookup {
  const external = new Map<string, Promise<CryptoKey>>();

  async function externalKey(kid: string): Promise<CryptoKey | undefined> {
    if (extraKeyResolver === undefined) return undefined;
    let jwk: JWK | undefined;
    try {
      jwk = await extraKeyResolver(kid);
    } catch (err) {
      if (err instanceof LeaseholdError) throw err;
      throw new LeaseholdError("upstream_unavailable", "lease token key lookup failed", {
        detail: String(err),
        cause: err,
        retryable: true,
      });
    }
    if (jwk === undefined || jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || typeof jwk.x !== "string") {
      return undefined;
    }
    if (jwk.kid !== undefined && jwk.kid !== kid) return undefined;
    const cacheKey = `${kid}:${jwk.x}`;
    let key = external.get(cacheKey);
    if (key === undefined) {
      if (external.size >= MAX_CACHED_EXTERNAL_KEYS) external.clear();
      // Only public members are imported, so a resolver can never hand us a signing key.
      key = importJWK({ kty: "OKP", crv: "Ed25519", x: jwk.x }, "EdDSA") as Promise<CryptoKey>;
      key.catch(() => external.delete(cacheKey));
      external.set(cacheKey, key);
    }
    return key;
  }

  return async (kid) => {
    const own = await keys.verificationKey(kid);
    if (own !== undefined) return own;
    // `leasehold keys rotate` may have added the key to the file after we loaded it.
    if (await keys.refresh()) {
      const reloaded = await keys.verificationKey(kid);
      if (reloaded !== undefined) return reloaded;
    }
    return externalKey(kid);
  };
}
