import type { PolicyContext } from "../policy/index.js";

/*
 * What the services need from identity, tokens, DPoP and policy, stated structurally so that the
 * service layer depends on behaviour, not on one implementation. These are the real interfaces:
 * a new capability changes them here, never through a parallel "extended" port.
 */

/**
 * A delegation a verifier vouched for (an issuer's `act` claim or leasehold's own delegation
 * token): delegators nearest first, the party acted for, and a narrowed scope.
 */
export interface VerifiedDelegation {
  readonly chain: readonly string[];
  /** The party the agent acts for (RFC 8693 `sub`): the last of `chain`. */
  readonly onBehalfOf: string;
  readonly scope?: readonly string[] | undefined;
}

/** A verified identity JWT. */
export interface VerifiedCaller {
  readonly subject: string;
  /** What the token says; never policy's input (a self-signed token says what its agent likes). */
  readonly claims: Record<string, unknown>;
  /**
   * The principal's attributes as policy sees them, each from who can vouch for it: `trust_kind`
   * and `iss` from the verifier, the rest from the trust bundle (self-signed agents) or the
   * issuer's claims. Decisions read these, never `claims`.
   */
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly delegation?: VerifiedDelegation | undefined;
  /**
   * The local callers the agent's key is pinned to (`allowedCallers` beside it in the trust
   * bundle): a request whose attested caller matches none is refused. Absent: any caller.
   */
  readonly allowedCallers?: readonly CallerPinPort[] | undefined;
  /**
   * The identity token's one-time `jti`, still to be spent (`SET key 1 PX ttlMs NX`; a replay when
   * the key exists): set only when verified with `deferSpend` by a sidecar that requires one-time
   * tokens. The checkout spends it in its rate-count script, before anything else.
   */
  readonly spend?: { readonly key: string; readonly ttlMs: number } | undefined;
}

/** One local caller an agent key is pinned to: a caller matches when equal on every part named. */
export interface CallerPinPort {
  readonly uid?: number | undefined;
  readonly exe_sha256?: string | undefined;
  readonly cgroup?: string | undefined;
}

export interface IdentityPort {
  /**
   * Verifies an identity JWT. A state-changing request (the default) spends the token's one-time
   * `jti` when the sidecar requires one-time tokens; a read-only one passes `{ oneTime: false }`;
   * with `deferSpend` the jti is returned unspent as `spend`, for the caller to spend first thing.
   * @throws LeaseholdError 401 unauthenticated for anything but a valid identity JWT (a replay included).
   */
  verify(
    jwt: string,
    use?: {
      readonly oneTime?: boolean;
      readonly delegation?: string | undefined;
      readonly deferSpend?: boolean;
    },
  ): Promise<VerifiedCaller>;
}

export interface LeaseTokenClaims {
  readonly leaseId: string;
  readonly agent: string;
  readonly resource: string;
  readonly expiresAt: number;
  /** The thumbprint of the key the token is bound to (DPoP, RFC 9449 `cnf.jkt`). */
  readonly jkt?: string | undefined;
}

export interface LeaseTokenPort {
  mint(input: {
    leaseId: string;
    agent: string;
    resource: string;
    account: string;
    expiresAt: number;
    /** Binds the token to this key thumbprint. */
    jkt?: string | undefined;
  }): Promise<string>;
  verify(token: string): Promise<LeaseTokenClaims>;
  /** Whether tokens signed with `kid` still verify (the key is in the key file or published). */
  keyKnown(kid: string): Promise<boolean>;
}

/** Verifies DPoP proofs (RFC 9449); the identity module's `createDpopVerifier` fits. */
export interface DpopPort {
  verify(check: {
    proof: string;
    htm: string;
    htu: string;
    accessToken?: string;
    jkt?: string;
  }): Promise<{ jkt: string }>;
}

export type PolicyActionName =
  | "checkout"
  | "reveal"
  | "renew"
  | "tool_call"
  | "revoke"
  | "approve"
  | "register";

export interface PolicyDecisionOut {
  readonly decision: "allow" | "deny" | "approval_required";
  readonly policies: readonly string[];
  readonly reasons: readonly string[];
  readonly errors: readonly string[];
}

/** A request as policy sees it, but for its context. */
export interface PolicySubject {
  principal: string;
  action: PolicyActionName;
  resource: string;
  principalAttrs?: Record<string, unknown>;
  resourceGroups?: string[];
}

/** A request before it is made: its subject, and the verified caller's delegation (absent: none). */
export interface PolicyPartialSubject extends PolicySubject {
  delegation?: { readonly chain?: readonly string[]; readonly onBehalfOf?: string } | undefined;
}

export interface PolicyPort {
  decide(req: PolicySubject & { context: PolicyContext }): PolicyDecisionOut;
  /**
   * Whether some request could get through (allowed, or with a human approval): false only for
   * a definite deny whatever the request carries; `errors`: what could not be evaluated.
   * Decides nothing and is not audited.
   */
  couldAllow(req: PolicyPartialSubject): { readonly possible: boolean; readonly errors: readonly string[] };
}

/** Whether this sidecar's Vault prefix and Redis keyspace form one cluster (sidecar/cluster/). */
export interface ClusterPort {
  /** Throws 503 upstream_unavailable, with the reason, unless they do. */
  assertServing(): void;
}
