import {
  type CompactVerifyResult,
  type CryptoKey,
  compactVerify,
  createRemoteJWKSet,
  customFetch,
  decodeJwt,
  errors,
  type ProtectedHeaderParameters,
  type RemoteJWKSet,
  type RemoteJWKSetOptions,
} from "jose";
import { LeaseholdError } from "../errors.js";
import type { BundleAttributes } from "./bundle-attributes.js";
import { checkIdentityClaims } from "./identity-claims.js";
import { checkIdentityHeader } from "./identity-header.js";
import { JwksFile } from "./jwks-file.js";
import { refuse } from "./refusal.js";
import { spiffeIdProblem } from "./spiffe-id.js";
import { compileSubjectGlobs } from "./subject-glob.js";
import { refuseOversizedToken } from "./token-size.js";
import {
  type CallerPin,
  DEFAULT_IDENTITY_ALGORITHMS,
  type IdentityOptions,
  type IdentityVerifier,
  RESERVED_ATTRIBUTES,
  type RemoteJwksOptions,
  type TrustEntry,
  type VerifiedIdentity,
} from "./types.js";
import type { VerificationKey } from "./verification-key.js";

/** Asymmetric JWS algorithms a trust entry may list; `none` and HMAC are never accepted. */
const SUPPORTED_ALGORITHMS = new Set([
  "EdDSA",
  "Ed25519",
  "ES256",
  "ES384",
  "ES512",
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
]);

/** At most this many keys are tried for one token, so a crowded bundle cannot multiply the work. */
const MAX_CANDIDATE_KEYS = 8;

/** Claims that say how a token is used (RFC 7519, RFC 8693, RFC 7800), never who its subject is. */
const TOKEN_CLAIMS = new Set([
  "aud",
  "exp",
  "nbf",
  "iat",
  "jti",
  "act",
  "may_act",
  "scope",
  "cnf",
  "client_id",
]);

interface CompiledEntry {
  kind: TrustEntry["kind"];
  /** The SPIFFE ID a token's `sub` stands for under this entry, or undefined if it cannot. */
  subjectOf: (sub: string) => string | undefined;
  matches: (subject: string) => boolean;
  algorithms: ReadonlySet<string>;
  issuer: string | undefined;
  verifySignature: (jwt: string, header: ProtectedHeaderParameters, subject: string) => Promise<Verified>;
}

interface Verified {
  payload: Uint8Array;
  kid: string | undefined;
  /** The trust bundle's attributes of the key that verified a self-signed token. */
  attributes?: BundleAttributes;
  /** The local callers the bundle pins that key to. */
  allowedCallers?: readonly CallerPin[] | undefined;
}

/**
 * Builds the verifier of agent identity tokens. Options are checked once here.
 * @throws Error when the options are unusable (no audience, an unsafe algorithm, an http:// JWKS URL, ...).
 */
export function createIdentityVerifier(opts: IdentityOptions): IdentityVerifier {
  if (typeof opts.audience !== "string" || opts.audience.length === 0) {
    throw new Error("identity.audience must be a non-empty string");
  }
  if (!(opts.maxTokenLifetime > 0)) throw new Error("identity.maxTokenLifetime must be positive");
  if (!(opts.clockSkew >= 0)) throw new Error("identity.clockSkew must not be negative");
  const entries = opts.trust.map((entry, i) => compileEntry(entry, i, opts.remote ?? {}));
  const allAlgorithms = new Set(entries.flatMap((e) => [...e.algorithms]));
  const now = opts.now ?? Date.now;

  return {
    async verify(jwt: string): Promise<VerifiedIdentity> {
      if (typeof jwt !== "string" || jwt.length === 0) throw refuse("identity token missing");
      refuseOversizedToken(jwt, "identity token");
      const header = checkIdentityHeader(jwt, allAlgorithms);
      const alg = header.alg ?? "";
      let unverified: Record<string, unknown>;
      try {
        unverified = decodeJwt(jwt);
      } catch {
        throw refuse("identity token is malformed", "payload");
      }
      const delegated = unverified.act !== undefined;
      // RFC 8693 §4.1: in a delegated token `act.sub` is the acting party, `sub` the one acted
      // for. Only an issuer vouches for that; a self-signed token speaks for its `sub` alone.
      const actor = delegated ? actingParty(unverified.act) : undefined;
      const raw = unverified.sub;
      if (raw === undefined) throw refuse("identity token subject missing");
      if (typeof raw !== "string") {
        throw refuse("identity token subject is not a valid SPIFFE ID", spiffeIdProblem(raw));
      }
      const candidates: { entry: CompiledEntry; subject: string }[] = [];
      let mapped = false;
      let selfAsserted = false;
      for (const entry of entries) {
        if (delegated && entry.kind === "agents") {
          const self = entry.subjectOf(raw);
          if (self !== undefined && entry.matches(self)) selfAsserted = true;
          continue;
        }
        const presented = entry.kind === "issuer" && actor !== undefined ? actor : raw;
        const subject = entry.subjectOf(presented);
        if (subject === undefined) continue;
        mapped = true;
        if (entry.matches(subject)) candidates.push({ entry, subject });
      }
      const selfAssertedRefusal = () =>
        refuse("identity token delegation is self-asserted (act in a self-signed token)");
      if (selfAsserted && (candidates.length === 0 || actor === undefined)) throw selfAssertedRefusal();
      if (delegated && actor === undefined)
        throw refuse("identity token act claim is malformed (no act.sub)");
      if (!mapped) throw refuse("identity token subject is not a valid SPIFFE ID", spiffeIdProblem(raw));
      if (candidates.length === 0) throw refuse("identity token subject is not trusted");

      let firstRefusal: LeaseholdError | undefined;
      for (const { entry, subject } of candidates) {
        try {
          if (!entry.algorithms.has(alg)) throw refuse("identity token algorithm not allowed", `alg ${alg}`);
          if (entry.issuer !== undefined && unverified.iss !== entry.issuer) {
            throw refuse("identity token issuer mismatch");
          }
          const verified = await entry.verifySignature(jwt, header, subject);
          const claims = parsePayload(verified.payload);
          checkIdentityClaims(claims, {
            audience: opts.audience,
            maxTokenLifetime: opts.maxTokenLifetime,
            clockSkew: opts.clockSkew,
            nowSeconds: now() / 1000,
          });
          const issuer = entry.kind === "issuer" && typeof claims.iss === "string" ? claims.iss : undefined;
          const identity: VerifiedIdentity = {
            subject,
            claims,
            trustKind: entry.kind,
            attributes: vouchedAttributes(entry.kind, verified, claims, issuer),
          };
          if (issuer !== undefined) identity.issuer = issuer;
          if (verified.allowedCallers !== undefined) identity.allowedCallers = verified.allowedCallers;
          if (verified.kid !== undefined) identity.keyId = verified.kid;
          return identity;
        } catch (err) {
          if (!(err instanceof LeaseholdError) || err.code !== "unauthenticated") throw err;
          firstRefusal ??= err;
        }
      }
      // No issuer vouched for the chain, and a self-signing agent's key cannot: say so.
      if (selfAsserted) throw selfAssertedRefusal();
      throw firstRefusal ?? refuse("identity token subject is not trusted");
    },
  };
}

function compileEntry(entry: TrustEntry, index: number, remote: RemoteJwksOptions): CompiledEntry {
  const where = `identity.trust[${index}]`;
  if (entry.kind !== "agents" && entry.kind !== "issuer")
    throw new Error(`${where}.kind must be agents or issuer`);
  const algorithms = new Set(entry.algorithms ?? DEFAULT_IDENTITY_ALGORITHMS);
  if (algorithms.size === 0) throw new Error(`${where}.algorithms must not be empty`);
  for (const alg of algorithms) {
    if (!SUPPORTED_ALGORITHMS.has(alg)) {
      throw new Error(`${where}.algorithms: ${alg} is not allowed (asymmetric JWS algorithms only)`);
    }
  }
  const matches = compileSubjectGlobs(entry.subjects);
  const asSpiffe = (sub: string) => (spiffeIdProblem(sub) === undefined ? sub : undefined);
  if (typeof entry.jwks !== "string" || entry.jwks.length === 0) throw new Error(`${where}.jwks is required`);
  const isUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(entry.jwks);
  if (isUrl && !entry.jwks.startsWith("https://"))
    throw new Error(`${where}.jwks: only https URLs are allowed`);

  if (entry.kind === "agents") {
    if (isUrl) throw new Error(`${where}.jwks: an agents bundle must be a file`);
    const file = new JwksFile(entry.jwks);
    return {
      kind: "agents",
      subjectOf: asSpiffe,
      matches,
      algorithms,
      issuer: undefined,
      verifySignature: async (jwt, header, subject) => {
        const { verified, key } = await verifyWithKeys(
          jwt,
          header,
          agentKeys(await file.keys(), header.kid, subject),
        );
        if (key.attributesProblem !== undefined) {
          throw refuse(
            "identity token key has unusable attributes in the trust bundle",
            key.attributesProblem,
          );
        }
        if (key.allowedCallersProblem !== undefined) {
          throw refuse(
            "identity token key has an unusable allowedCallers in the trust bundle",
            key.allowedCallersProblem,
          );
        }
        return Object.assign({}, verified, {
          attributes: key.attributes,
          allowedCallers: key.allowedCallers,
        });
      },
    };
  }
  if (entry.issuer !== undefined && (typeof entry.issuer !== "string" || entry.issuer.length === 0)) {
    throw new Error(`${where}.issuer must be a non-empty string`);
  }
  const subjectOf =
    entry.kubernetes === undefined ? asSpiffe : kubernetesSubject(entry.kubernetes.trustDomain, where);
  if (isUrl) {
    const options: RemoteJWKSetOptions = {
      cooldownDuration: remote.cooldownMs ?? 30_000,
      timeoutDuration: remote.timeoutMs ?? 5_000,
    };
    if (remote.fetch !== undefined) options[customFetch] = remote.fetch;
    const set = createRemoteJWKSet(new URL(entry.jwks), options);
    return {
      kind: "issuer",
      subjectOf,
      matches,
      algorithms,
      issuer: entry.issuer,
      verifySignature: (jwt, header) => verifyWithRemote(jwt, header, set),
    };
  }
  const file = new JwksFile(entry.jwks);
  return {
    kind: "issuer",
    subjectOf,
    matches,
    algorithms,
    issuer: entry.issuer,
    verifySignature: async (jwt, header) => {
      const keys = await file.keys();
      const byKid = header.kid === undefined ? keys : keys.filter((k) => k.kid === header.kid);
      if (byKid.length === 0) throw refuse("identity token signing key unknown");
      return (await verifyWithKeys(jwt, header, byKid)).verified;
    },
  };
}

/** The acting party of a token's `act` claim (`act.sub`), or undefined when it names none. */
function actingParty(act: unknown): string | undefined {
  if (typeof act !== "object" || act === null || Array.isArray(act)) return undefined;
  const sub = (act as Record<string, unknown>).sub;
  return typeof sub === "string" ? sub : undefined;
}

/** A DNS label, as Kubernetes names namespaces; service-account names may also hold dots. */
const K8S_SUBJECT =
  /^system:serviceaccount:([a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?):([a-z0-9](?:[-.a-z0-9]{0,251}[a-z0-9])?)$/;

/** `system:serviceaccount:<ns>:<name>` → `spiffe://<trustDomain>/ns/<ns>/sa/<name>`; anything else: undefined. */
function kubernetesSubject(trustDomain: string, where: string): (sub: string) => string | undefined {
  if (spiffeIdProblem(`spiffe://${trustDomain}/ns/x/sa/y`) !== undefined) {
    throw new Error(`${where}.kubernetes.trustDomain is not a valid SPIFFE trust domain`);
  }
  return (sub) => {
    const m = K8S_SUBJECT.exec(sub);
    if (!m) return undefined;
    const id = `spiffe://${trustDomain}/ns/${m[1]}/sa/${m[2]}`;
    return spiffeIdProblem(id) === undefined ? id : undefined;
  };
}

/**
 * Keys of an agents bundle that may sign for `subject`: the key named by `kid`
 * must carry that subject; without a `kid`, every key bound to the subject is a candidate.
 */
function agentKeys(
  keys: readonly VerificationKey[],
  kid: string | undefined,
  subject: string,
): VerificationKey[] {
  if (kid === undefined) {
    const bound = keys.filter((k) => k.sub === subject);
    if (bound.length === 0) throw refuse("identity token signing key unknown");
    return bound;
  }
  const named = keys.filter((k) => k.kid === kid);
  if (named.length === 0) throw refuse("identity token signing key unknown");
  const bound = named.filter((k) => k.sub === subject);
  if (bound.length === 0) throw refuse("identity token key is not bound to this subject");
  return bound;
}

async function verifyWithKeys(
  jwt: string,
  header: ProtectedHeaderParameters,
  keys: readonly VerificationKey[],
): Promise<{ verified: Verified; key: VerificationKey }> {
  const alg = header.alg ?? "";
  const usable = keys.filter((k) => k.fits(alg)).slice(0, MAX_CANDIDATE_KEYS);
  if (usable.length === 0) throw refuse("identity token signing key unknown", `no key fits alg ${alg}`);
  for (const key of usable) {
    let imported: CryptoKey;
    try {
      imported = await key.key(alg);
    } catch {
      continue;
    }
    const result = await tryVerify(jwt, imported, alg);
    if (result !== undefined)
      return { verified: { payload: result.payload, kid: key.kid ?? header.kid }, key };
  }
  throw refuse("identity token signature invalid");
}

async function verifyWithRemote(
  jwt: string,
  header: ProtectedHeaderParameters,
  set: RemoteJWKSet,
): Promise<Verified> {
  const alg = header.alg ?? "";
  let key: CryptoKey;
  try {
    key = await set(header);
  } catch (err) {
    if (err instanceof errors.JWKSMultipleMatchingKeys) {
      for await (const candidate of err as unknown as AsyncIterable<CryptoKey>) {
        const result = await tryVerify(jwt, candidate, alg);
        if (result !== undefined) return { payload: result.payload, kid: header.kid };
      }
      throw refuse("identity token signature invalid");
    }
    if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JOSENotSupported) {
      throw refuse("identity token signing key unknown");
    }
    throw new LeaseholdError("upstream_unavailable", "identity key set unavailable", {
      detail: String(err),
      cause: err,
      retryable: true,
    });
  }
  const result = await tryVerify(jwt, key, alg);
  if (result === undefined) throw refuse("identity token signature invalid");
  return { payload: result.payload, kid: header.kid };
}

/** Resolves the verified JWS, or `undefined` when the signature does not verify with `key`. */
async function tryVerify(jwt: string, key: CryptoKey, alg: string): Promise<CompactVerifyResult | undefined> {
  try {
    return await compactVerify(jwt, key, { algorithms: [alg] });
  } catch (err) {
    if (err instanceof errors.JWSSignatureVerificationFailed) return undefined;
    throw refuse("identity token is malformed", String(err));
  }
}

/**
 * The attributes policy may see, each from who vouches for it: the trust entry's kind and the
 * issuer from this verification; a self-signed token's from its key in the operator's bundle (its
 * claims are the agent's own word); an issuer's token's from the issuer's claims, except those
 * that describe the token and the reserved names.
 */
function vouchedAttributes(
  kind: TrustEntry["kind"],
  verified: Verified,
  claims: Record<string, unknown>,
  issuer: string | undefined,
): Record<string, unknown> {
  const base =
    kind === "agents"
      ? { ...verified.attributes }
      : Object.fromEntries(
          Object.entries(claims).filter(([k]) => !TOKEN_CLAIMS.has(k) && !RESERVED_ATTRIBUTES.includes(k)),
        );
  const out: Record<string, unknown> = Object.assign(base, { trust_kind: kind });
  if (issuer !== undefined) out.iss = issuer;
  return out;
}

function parsePayload(payload: Uint8Array): Record<string, unknown> {
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    throw refuse("identity token is malformed", "payload is not JSON");
  }
  if (typeof claims !== "object" || claims === null || Array.isArray(claims)) {
    throw refuse("identity token is malformed", "payload is not a JSON object");
  }
  return claims as Record<string, unknown>;
}
