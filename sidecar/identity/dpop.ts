import { createHash } from "node:crypto";
import {
  type CryptoKey,
  calculateJwkThumbprint,
  decodeProtectedHeader,
  errors,
  importJWK,
  type JWK,
  type JWTPayload,
  jwtVerify,
  type ProtectedHeaderParameters,
} from "jose";
import { LeaseholdError } from "../errors.js";
import { refuse } from "./refusal.js";
import { refuseOversizedToken } from "./token-size.js";
import type { DpopCheck, DpopVerifier, DpopVerifierOptions, VerifiedDpopProof } from "./types.js";

/** The `typ` of every DPoP proof (RFC 9449 §4.2). */
export const DPOP_PROOF_TYP = "dpop+jwt";
/** Proof algorithms accepted unless configured otherwise: asymmetric only. */
export const DEFAULT_DPOP_ALGORITHMS = ["EdDSA", "ES256", "ES384", "PS256", "RS256"] as const;
/** How old a proof may be, seconds. */
export const DEFAULT_DPOP_WINDOW_SECONDS = 60;

const SUPPORTED = new Set([
  "EdDSA",
  "Ed25519",
  "ES256",
  "ES384",
  "ES512",
  "PS256",
  "PS384",
  "PS512",
  "RS256",
]);
/** JWK members that only a private (or symmetric) key has: a proof must never carry one. */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] as const;
const PUBLIC_MEMBERS: Record<string, readonly string[]> = {
  OKP: ["kty", "crv", "x"],
  EC: ["kty", "crv", "x", "y"],
  RSA: ["kty", "n", "e"],
};
const MAX_CACHED_KEYS = 1024;
const MAX_JTI_LENGTH = 256;
const JKT = /^[A-Za-z0-9_-]{43}$/;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * The `htu` a proof must carry for a request: `http://` + the request's `Host` header + the
 * request path, without query or fragment, normalized as a WHATWG URL (lowercase host, default
 * port dropped, dot segments resolved). The sidecar speaks plain HTTP on loopback or a Unix
 * socket, so the scheme is always `http`; over a Unix socket the host is whatever `Host` the
 * client sent (the SDK sends `localhost`). Example: `http://127.0.0.1:7733/v1/leases/lse_x/credential`.
 * @returns `undefined` when the host or path cannot form a URL.
 */
export function dpopRequestUrl(host: string | undefined, url: string): string | undefined {
  if (host === undefined || host.length === 0) return undefined;
  const cut = url.search(/[?#]/);
  const path = cut === -1 ? url : url.slice(0, cut);
  if (!path.startsWith("/")) return undefined;
  return normalizeHtu(`http://${host}${path}`);
}

/** `ath`: base64url SHA-256 of the token's ASCII bytes (RFC 9449 §4.2). */
export function accessTokenHash(token: string): string {
  return createHash("sha256").update(token, "ascii").digest("base64url");
}

/** Compares as RFC 9449 §4.3 asks: scheme, host and port normalized, query and fragment ignored. */
function normalizeHtu(s: string): string | undefined {
  if (s.length > 2048) return undefined;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return undefined;
  }
  if ((u.protocol !== "http:" && u.protocol !== "https:") || u.username !== "" || u.password !== "") {
    return undefined;
  }
  return `${u.origin}${u.pathname}`;
}

/**
 * Builds the verifier of DPoP proofs (RFC 9449): `typ: dpop+jwt`; an allowed asymmetric `alg`;
 * a public `jwk` header and no other key reference; signature by that key; `htm` equal to the
 * request method; `htu` equal to the request URL (see {@link dpopRequestUrl}); `iat` no older
 * than the window and not in the future beyond the skew; `ath` equal to the token's hash when a
 * token is presented; the key's thumbprint equal to the token's `cnf.jkt` when it is bound;
 * `jti` never seen before (kept in the replay store until `iat + window`). Server nonces are
 * not used.
 * @throws Error when the options are unusable.
 */
export function createDpopVerifier(opts: DpopVerifierOptions): DpopVerifier {
  const algorithms = [...(opts.algorithms ?? DEFAULT_DPOP_ALGORITHMS)];
  if (algorithms.length === 0) throw new Error("dpop algorithms must not be empty");
  for (const alg of algorithms) {
    if (!SUPPORTED.has(alg)) throw new Error(`dpop algorithm ${alg} is not allowed (asymmetric JWS only)`);
  }
  const allowed = new Set(algorithms);
  const window = opts.windowSeconds ?? DEFAULT_DPOP_WINDOW_SECONDS;
  const skew = opts.clockSkew ?? 5;
  if (!(window > 0) || !(skew >= 0)) throw new Error("dpop window must be positive and skew not negative");
  const now = opts.now ?? Date.now;
  // An agent signs many proofs with one key: import it and hash its thumbprint once.
  const imported = new Map<string, Promise<{ key: CryptoKey; jkt: string }>>();
  const importKey = (jwk: JWK, alg: string) => {
    const id = `${alg}:${JSON.stringify(jwk)}`;
    let entry = imported.get(id);
    if (entry === undefined) {
      if (imported.size >= MAX_CACHED_KEYS) imported.clear();
      entry = Promise.all([importJWK(jwk, alg), calculateJwkThumbprint(jwk, "sha256")]).then(
        ([key, jkt]) => ({ key: key as CryptoKey, jkt }),
      );
      entry.catch(() => imported.delete(id));
      imported.set(id, entry);
    }
    return entry;
  };

  return {
    async verify(check: DpopCheck): Promise<VerifiedDpopProof> {
      const { proof } = check;
      if (typeof proof !== "string" || proof.length === 0) throw refuse("DPoP proof missing");
      refuseOversizedToken(proof, "DPoP proof");
      if (!COMPACT_JWS.test(proof)) throw refuse("DPoP proof is malformed");
      let header: ProtectedHeaderParameters;
      try {
        header = decodeProtectedHeader(proof);
      } catch {
        throw refuse("DPoP proof is malformed");
      }
      if (typeof header.typ !== "string" || header.typ.toLowerCase() !== DPOP_PROOF_TYP) {
        throw refuse("DPoP proof typ must be dpop+jwt");
      }
      if (typeof header.alg !== "string" || !allowed.has(header.alg)) {
        throw refuse("DPoP proof algorithm not allowed", `alg ${String(header.alg)}`);
      }
      for (const name of ["jku", "x5u", "x5c", "crit"] as const) {
        if (Object.hasOwn(header, name)) throw refuse(`DPoP proof header "${name}" is not allowed`);
      }
      const jwk = publicJwk(header.jwk);
      let key: CryptoKey;
      let jkt: string;
      try {
        ({ key, jkt } = await importKey(jwk, header.alg));
      } catch (err) {
        throw refuse("DPoP proof jwk does not fit its algorithm", String(err));
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(proof, key, {
          algorithms: [header.alg],
          typ: DPOP_PROOF_TYP,
          currentDate: new Date(now()),
          clockTolerance: skew,
          requiredClaims: ["iat", "jti", "htm", "htu"],
        }));
      } catch (err) {
        throw mapProofError(err);
      }
      const { iat, jti, htm, htu, ath } = payload;
      if (typeof iat !== "number" || !Number.isFinite(iat)) throw refuse("DPoP proof iat invalid");
      if (typeof jti !== "string" || jti.length === 0 || jti.length > MAX_JTI_LENGTH) {
        throw refuse("DPoP proof jti invalid");
      }
      if (htm !== check.htm) throw refuse("DPoP proof htm does not match the request method");
      const expected = normalizeHtu(check.htu);
      if (typeof htu !== "string" || expected === undefined || normalizeHtu(htu) !== expected) {
        throw refuse("DPoP proof htu does not match the request URL");
      }
      const nowSeconds = now() / 1000;
      if (iat > nowSeconds + skew) throw refuse("DPoP proof issued in the future");
      if (iat < nowSeconds - window) throw refuse(`DPoP proof is stale (older than ${window} s)`);
      if (check.accessToken !== undefined) {
        if (typeof ath !== "string") throw refuse("DPoP proof ath missing");
        if (ath !== accessTokenHash(check.accessToken))
          throw refuse("DPoP proof ath does not match the token");
      } else if (ath !== undefined && typeof ath !== "string") {
        throw refuse("DPoP proof ath invalid");
      }
      if (check.jkt !== undefined && jkt !== check.jkt) {
        throw refuse("DPoP proof key does not match the key the lease token is bound to");
      }
      await remember(jkt, jti, Math.ceil((iat + window + skew - nowSeconds) * 1000));
      return { jkt, jti, iat };
    },
  };

  async function remember(jkt: string, jti: string, ttlMs: number): Promise<void> {
    // Hashed: the key stays short whatever the jti, and one key's jtis cannot collide with another's.
    const id = createHash("sha256").update(`${jkt}\0${jti}`).digest("base64url");
    let fresh: unknown;
    try {
      fresh = await opts.replay.set(`${opts.prefix}dpop:jti:${id}`, "1", "PX", Math.max(1000, ttlMs), "NX");
    } catch (err) {
      throw new LeaseholdError("upstream_unavailable", "the DPoP replay cache is unavailable", {
        detail: String(err),
        cause: err,
        retryable: true,
      });
    }
    if (fresh !== "OK") throw refuse("DPoP proof was already used (jti replay)");
  }
}

/** The `jwk` header reduced to its public members; refused when it is missing, private or odd. */
function publicJwk(raw: unknown): JWK {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw refuse("DPoP proof jwk header missing");
  }
  const jwk = raw as Record<string, unknown>;
  for (const name of PRIVATE_MEMBERS) {
    if (Object.hasOwn(jwk, name)) throw refuse("DPoP proof jwk must be a public key");
  }
  const members = typeof jwk.kty === "string" ? PUBLIC_MEMBERS[jwk.kty] : undefined;
  if (members === undefined) throw refuse("DPoP proof jwk key type not allowed");
  const out: Record<string, string> = {};
  for (const name of members) {
    const v = jwk[name];
    if (typeof v !== "string" || v.length === 0 || v.length > 1024)
      throw refuse("DPoP proof jwk is malformed");
    out[name] = v;
  }
  return out as JWK;
}

function mapProofError(err: unknown): LeaseholdError {
  if (err instanceof errors.JWSSignatureVerificationFailed) return refuse("DPoP proof signature invalid");
  if (err instanceof errors.JWTExpired) return refuse("DPoP proof expired");
  if (err instanceof errors.JWTClaimValidationFailed) {
    return refuse(`DPoP proof ${err.claim} claim invalid`, err.reason);
  }
  if (err instanceof errors.JOSEError) return refuse("DPoP proof is malformed", err.code);
  return refuse("DPoP proof is malformed", String(err));
}

/** True when `s` has the shape of an RFC 7638 SHA-256 thumbprint. */
export function isJwkThumbprint(s: unknown): s is string {
  return typeof s === "string" && JKT.test(s);
}
