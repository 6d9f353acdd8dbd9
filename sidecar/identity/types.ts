import type { JWK } from "jose";

/** JWS algorithms an identity token may use unless a trust entry narrows the list. */
export const DEFAULT_IDENTITY_ALGORITHMS = ["EdDSA", "ES256", "ES384", "RS256", "PS256"] as const;

/**
 * One source of trust for agent identity tokens, already resolved by config
 * (relative paths are absolute).
 *
 * Subject globs use picomatch with `dot: true`: `*` matches within one path
 * segment (`spiffe://example.org/agent/*` matches `.../agent/reporter`, not
 * `.../agent/a/b`), `**` matches any number of segments
 * (`spiffe://example.org/**`), `{a,b}` alternates. Matching is case-sensitive.
 */
export type TrustEntry =
  | {
      kind: "agents";
      /** File path of a JWKS whose every key carries a `sub` member: the one subject it may sign for. */
      jwks: string;
      subjects: string[];
      algorithms?: string[];
    }
  | {
      kind: "issuer";
      /** File path, or an https URL fetched with jose's remote JWKS cache. */
      jwks: string;
      /** Exact `iss` to require, if set. */
      issuer?: string;
      /**
       * The issuer is a Kubernetes API server: its service-account tokens' subjects
       * (`system:serviceaccount:<ns>:<name>`) become `spiffe://<trustDomain>/ns/<ns>/sa/<name>`
       * (Istio's and SPIRE's k8s form); the globs and policy see that SPIFFE ID.
       */
      kubernetes?: { trustDomain: string };
      subjects: string[];
      algorithms?: string[];
    };

/** A fetch implementation for remote JWKS (jose's `customFetch` contract). */
export type JwksFetch = (
  url: string,
  options: { headers: Headers; method: "GET"; redirect: "manual"; signal: AbortSignal },
) => Promise<Response>;

export interface RemoteJwksOptions {
  /** Minimum time between two fetches triggered by an unknown `kid`. @default 30000 */
  cooldownMs?: number;
  /** Request timeout. @default 5000 */
  timeoutMs?: number;
  /** Replaces global fetch (proxies, private CAs). */
  fetch?: JwksFetch;
}

export interface IdentityOptions {
  /** The one `aud` value tokens must carry. */
  audience: string;
  trust: TrustEntry[];
  /** Longest accepted `exp - iat`, seconds. */
  maxTokenLifetime: number;
  /** Tolerance applied to `exp`, `nbf` and a future `iat`, seconds. */
  clockSkew: number;
  /** Clock in ms since the epoch. @default Date.now */
  now?: () => number;
  /** Settings for https JWKS sources. */
  remote?: RemoteJwksOptions;
}

/**
 * Attribute names leasehold itself sets from the verifier's result: no token claim and no trust
 * bundle may set them.
 */
export const RESERVED_ATTRIBUTES: readonly string[] = ["trust_kind", "iss", "sub"];

/** A value an operator may give an agent's key in its trust bundle (`attributes` member). */
export type BundleAttributeValue = string | number | boolean | string[];

/** The outcome of a successful identity verification. */
export interface VerifiedIdentity {
  /** The SPIFFE ID the token speaks for. */
  subject: string;
  /** The verified `iss` of an `issuer` entry's token; never set for self-signed (`agents`) tokens. */
  issuer?: string;
  /** Every claim of the verified token: what the token says, not what anyone vouched for. */
  claims: Record<string, unknown>;
  /**
   * What policy may know of the caller, each from who can vouch for it: `trust_kind` (the trust
   * entry's kind) and `iss` (`issuer`) from this verification; for an `agents` entry the
   * `attributes` the operator put beside the key in the trust bundle; for an `issuer` entry the
   * issuer's claims other than the registered and reserved ones. A self-signed token's claims never
   * reach it.
   */
  attributes: Readonly<Record<string, unknown>>;
  keyId?: string;
  trustKind: "agents" | "issuer";
  /** The delegation chain of an `act` claim, when the verifier checks delegation (see `withDelegation`). */
  delegation?: Delegation;
  /**
   * The local callers the key's agent may act from (`allowedCallers` beside its key in an agents
   * trust bundle); the services refuse a request whose attested caller matches none. Absent: any.
   */
  allowedCallers?: readonly CallerPin[];
  /** The one-time `jti` the caller must spend (only with `deferSpend` and a replay guard). */
  spend?: OneTimeSpend;
}

/** A token's one-time `jti` to spend: `SET key 1 PX ttlMs NX`, and a replay when the key exists. */
export interface OneTimeSpend {
  readonly key: string;
  readonly ttlMs: number;
}

/**
 * One local caller an agent's key is pinned to: an attested caller matches when it equals every
 * part named here.
 */
export interface CallerPin {
  readonly uid?: number;
  readonly exe_sha256?: string;
  readonly cgroup?: string;
}

/** How a request uses the identity token it presents. */
export interface IdentityUse {
  /**
   * The request changes state or hands out a token (checkout, an approval poll, approve, deny,
   * revoke, register, token exchange): with a replay guard (`withReplayGuard`), the token's `jti`
   * is accepted once. Read-only requests (operators' lists and views) pass false and may present a
   * token again within its lifetime. @default true
   */
  oneTime?: boolean;
  /**
   * The caller spends the one-time `jti` itself, as the first step of its first Redis round trip
   * (a checkout: in the script that counts the agent's rate), and refuses the request when it was
   * spent before. The replay guard then checks everything else as usual, spends nothing, and
   * returns the key to spend as `spend`. Without a replay guard there is no `spend`.
   */
  deferSpend?: boolean;
  /**
   * A delegation token from leasehold's token exchange, presented beside the identity JWT: the
   * verified identity then acts for the party it names (see `withDelegation`).
   */
  delegation?: string;
}

export interface IdentityVerifier {
  /**
   * Verifies an identity JWT against the configured trust entries.
   * @throws LeaseholdError `unauthenticated` on any refusal, `upstream_unavailable` when a remote JWKS cannot be fetched.
   */
  verify(jwt: string, use?: IdentityUse): Promise<VerifiedIdentity>;
}

export interface GenerateAgentKeyOptions {
  /** The agent's SPIFFE ID. */
  id: string;
  /** Folder for the private key file. */
  outDir: string;
  /** Trust bundle to add the public key to. @default <outDir>/agents.jwks.json */
  bundle?: string;
  /**
   * Policy attributes of the agent (`team`, `groups`, ...), written beside its public key in the
   * bundle: the operator vouches for them, the agent's tokens cannot change them.
   */
  attributes?: Readonly<Record<string, BundleAttributeValue>>;
}

export interface GeneratedAgentKey {
  keyFile: string;
  bundleFile: string;
  kid: string;
}

export interface MintIdentityAssertionOptions {
  /** Private key file written by `generateAgentKey`. */
  keyFile: string;
  audience: string;
  /** @default 60 */
  ttlSeconds?: number;
  now?: () => number;
  /** Additional claims; registered claims (`sub`, `aud`, `iat`, `exp`, `jti`, `nbf`, `iss`) may not be set here. */
  extraClaims?: Record<string, unknown>;
}

/** Claims a lease token stands for. */
export interface LeaseTokenInput {
  leaseId: string;
  agent: string;
  resource: string;
  account: string;
  /** ms since the epoch. */
  expiresAt: number;
  /** RFC 7638 thumbprint of the agent's DPoP key: the token gets `cnf: { jkt }` and is bound to that key. */
  jkt?: string;
}

export interface VerifiedLeaseToken {
  leaseId: string;
  agent: string;
  resource: string;
  /** The `acc` claim; empty when a token carries none. */
  account: string;
  /** ms since the epoch. */
  expiresAt: number;
  kid: string;
  /** The `cnf.jkt` of a DPoP-bound token: every use needs a proof signed by that key. */
  jkt?: string;
}

export interface LeaseTokenService {
  /** Mints a lease token signed with the current key. */
  mint(input: LeaseTokenInput): Promise<string>;
  /**
   * Checks signature, key, `typ`, `iss`, `aud` and `exp`; the lease store is the caller's to check.
   * @throws LeaseholdError `lease_expired` for an expired token, `unauthenticated` for every other refusal.
   */
  verify(token: string): Promise<VerifiedLeaseToken>;
  /** Whether a token signed with `kid` would find its key (own key file, or published by the cluster). */
  keyKnown(kid: string): Promise<boolean>;
}

/** Looks up a public key published by another sidecar of the cluster. */
export type LeaseKeyResolver = (kid: string) => Promise<JWK | undefined>;

export interface LeaseTokenKeysOptions {
  /** `tokens.signingKey`: the key file, created 0600 if absent. */
  file: string;
  /** How long a replaced key still verifies tokens, seconds. @default 604800 (7 days) */
  retentionSeconds?: number;
  now?: () => number;
}

/**
 * A verified delegation chain (RFC 8693 §4.1): the token's `sub` is the party acted for,
 * `act.sub` the acting agent (the verified subject), each nested `act` a prior actor.
 */
export interface Delegation {
  /**
   * Delegators, nearest first: the prior actors from the most recent (`act.act.sub`), the last
   * is the origin of the task (the token's `sub`).
   */
  chain: string[];
  /** The party the agent acts for: the token's `sub`, the last of `chain`. */
  onBehalfOf: string;
  /** The narrowest `scope` along the chain (resource names), when any hop or the token states one. */
  scope?: string[];
}

export interface DelegationOptions {
  /** Trust entries: a delegating agent must match the subject globs of one of them. */
  trust: readonly Pick<TrustEntry, "subjects">[];
  /** Globs for human delegators (`user:<email>`). @default [] (none) */
  humans?: readonly string[];
  /** Most `act` hops accepted (1..5). @default 5 */
  maxDepth?: number;
}

/** Remembers DPoP proof ids until they can no longer be replayed (a Redis client fits). */
export interface DpopReplayStore {
  set(key: string, value: string, px: "PX", ms: number, nx: "NX"): Promise<unknown>;
}

export interface DpopVerifierOptions {
  /** Where used proof `jti`s are kept. */
  replay: DpopReplayStore;
  /** Key prefix for the replay cache (the Redis prefix of the cluster). */
  prefix: string;
  /** Proof algorithms accepted. @default ["EdDSA", "ES256", "ES384", "PS256", "RS256"] */
  algorithms?: readonly string[];
  /** How old a proof's `iat` may be, seconds. @default 60 */
  windowSeconds?: number;
  /** How far in the future a proof's `iat` may be, seconds. @default 5 */
  clockSkew?: number;
  /** ms since the epoch. @default Date.now */
  now?: () => number;
}

/** What one DPoP proof must match. */
export interface DpopCheck {
  /** The `DPoP` header. */
  proof: string;
  /** The request method. */
  htm: string;
  /** The request URL without query and fragment (see `dpopRequestUrl`). */
  htu: string;
  /** The token the request presents in Authorization; the proof's `ath` must be its hash. */
  accessToken?: string;
  /** The key the token is bound to (`cnf.jkt`); the proof must be signed by it. */
  jkt?: string;
}

export interface VerifiedDpopProof {
  /** RFC 7638 thumbprint of the proof's key. */
  jkt: string;
  jti: string;
  /** Seconds since the epoch. */
  iat: number;
}

export interface DpopVerifier {
  /**
   * Verifies one proof and records its `jti` (a second use is refused).
   * @throws LeaseholdError `unauthenticated` naming the DPoP problem; `upstream_unavailable` when the replay cache fails.
   */
  verify(check: DpopCheck): Promise<VerifiedDpopProof>;
}
