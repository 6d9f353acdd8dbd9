import { type CryptoKey, importJWK, type JWK } from "jose";
import { parseAllowedCallers } from "./allowed-callers.js";
import { type BundleAttributes, parseBundleAttributes } from "./bundle-attributes.js";
import type { CallerPin } from "./types.js";

/**
 * A JWK as it appears in a trust bundle: a key plus the subject it may sign for, its policy
 * attributes and the local callers it is pinned to.
 */
export type BundleJwk = JWK & {
  sub?: string;
  attributes?: Record<string, unknown>;
  allowedCallers?: CallerPin[];
};

const CURVES_BY_ALG: Record<string, { kty: string; crv?: readonly string[] }> = {
  EdDSA: { kty: "OKP", crv: ["Ed25519", "Ed448"] },
  Ed25519: { kty: "OKP", crv: ["Ed25519"] },
  ES256: { kty: "EC", crv: ["P-256"] },
  ES384: { kty: "EC", crv: ["P-384"] },
  ES512: { kty: "EC", crv: ["P-521"] },
  RS256: { kty: "RSA" },
  RS384: { kty: "RSA" },
  RS512: { kty: "RSA" },
  PS256: { kty: "RSA" },
  PS384: { kty: "RSA" },
  PS512: { kty: "RSA" },
};

/**
 * A public verification key from a JWKS. Only public members are kept, so a
 * bundle that wrongly holds private keys still yields verify-only keys, and
 * symmetric (`oct`) keys are never used.
 */
export class VerificationKey {
  readonly jwk: JWK;
  readonly kid: string | undefined;
  readonly sub: string | undefined;
  /** The policy attributes the bundle gives this key's subject (the operator vouches for them). */
  readonly attributes: BundleAttributes;
  /** The local callers the bundle pins this key to (`allowedCallers`); undefined: any caller. */
  readonly allowedCallers: readonly CallerPin[] | undefined;
  /** Why the bundle's `attributes` member is unusable; such a key verifies nothing. */
  readonly attributesProblem: string | undefined;
  /** Why the bundle's `allowedCallers` member is unusable; such a key verifies nothing. */
  readonly allowedCallersProblem: string | undefined;
  readonly #imported = new Map<string, Promise<CryptoKey>>();

  private constructor(jwk: JWK, sub: string | undefined, attributes: unknown, allowedCallers: unknown) {
    this.jwk = jwk;
    this.kid = jwk.kid;
    this.sub = sub;
    const parsed = parseBundleAttributes(attributes);
    const pins = parseAllowedCallers(allowedCallers);
    this.attributes = parsed.ok ? parsed.attributes : {};
    this.allowedCallers = pins.ok ? pins.pins : [];
    this.attributesProblem = parsed.ok ? undefined : parsed.problem;
    this.allowedCallersProblem = pins.ok ? undefined : pins.problem;
  }

  /** Builds a key from a JWKS member; `undefined` for members that cannot verify signatures. */
  static from(raw: unknown): VerificationKey | undefined {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return undefined;
    const src = raw as Record<string, unknown>;
    const pick = (name: string): string | undefined => {
      const v = src[name];
      return typeof v === "string" ? v : undefined;
    };
    const kty = pick("kty");
    const jwk: JWK = { kty };
    if (kty === "OKP") Object.assign(jwk, { crv: pick("crv"), x: pick("x") });
    else if (kty === "EC") Object.assign(jwk, { crv: pick("crv"), x: pick("x"), y: pick("y") });
    else if (kty === "RSA") Object.assign(jwk, { n: pick("n"), e: pick("e") });
    else return undefined;
    const kid = pick("kid");
    const alg = pick("alg");
    const use = pick("use");
    if (kid !== undefined) jwk.kid = kid;
    if (alg !== undefined) jwk.alg = alg;
    if (use !== undefined) jwk.use = use;
    const ops = src.key_ops;
    if (Array.isArray(ops) && ops.every((op) => typeof op === "string")) jwk.key_ops = ops;
    return new VerificationKey(jwk, pick("sub"), src.attributes, src.allowedCallers);
  }

  /** True when this key may verify a signature made with `alg` (type, curve, `alg`, `use`, `key_ops`). */
  fits(alg: string): boolean {
    const want = CURVES_BY_ALG[alg];
    if (want === undefined || this.jwk.kty !== want.kty) return false;
    if (want.crv !== undefined && !want.crv.includes(this.jwk.crv ?? "")) return false;
    if (this.jwk.alg !== undefined && this.jwk.alg !== alg) return false;
    if (this.jwk.use !== undefined && this.jwk.use !== "sig") return false;
    if (this.jwk.key_ops !== undefined && !this.jwk.key_ops.includes("verify")) return false;
    return true;
  }

  /** The imported key for `alg`, imported once. */
  key(alg: string): Promise<CryptoKey> {
    let imported = this.#imported.get(alg);
    if (imported === undefined) {
      imported = importJWK(this.jwk, alg) as Promise<CryptoKey>;
      // A failed import must not poison the cache for later attempts.
      imported.catch(() => this.#imported.delete(alg));
      this.#imported.set(alg, imported);
    }
    return imported;
  }
}
