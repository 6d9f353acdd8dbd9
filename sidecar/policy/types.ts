import type { KnownCallerFacts, PolicyContext } from "./context-fields.js";

/** Every action a policy can name, as `Action::"<name>"`. */
export const POLICY_ACTIONS = [
  "checkout",
  "reveal",
  "renew",
  "tool_call",
  "revoke",
  "approve",
  "register",
  "statement",
] as const;

export type PolicyAction = (typeof POLICY_ACTIONS)[number];

export type { PolicyContext };

export interface PolicyRequest {
  /** The agent's SPIFFE ID: `Agent::"<principal>"`. */
  principal: string;
  action: PolicyAction;
  /** The resource name: `Resource::"<resource>"`. */
  resource: string;
  context: PolicyContext;
  /** Verified attributes (never raw claims); only those declared in the schema (AGENT_ATTRIBUTES) with the right type are used. */
  principalAttrs?: Record<string, unknown>;
  /** `AgentGroup` ids the agent is in. */
  principalGroups?: string[];
  /** Only attributes declared in the schema (RESOURCE_ATTRIBUTES) are used. */
  resourceAttrs?: Record<string, unknown>;
  /** `ResourceGroup` ids the resource is in. */
  resourceGroups?: string[];
}

export interface PolicyDecision {
  decision: "allow" | "deny" | "approval_required";
  /** Ids (`@id` annotation, else Cedar's `policyN`) of the policies that decided. */
  policies: string[];
  /** Human-readable reasons. */
  reasons: string[];
  /** Evaluation errors; a policy that errors is skipped by Cedar, so these explain surprises. */
  errors: string[];
}

/**
 * A request known but for what the request itself decides: what a listing asks before any
 * request is made. `delegation`: the verified caller's delegators and the party it acts for
 * (absent: it acts for itself), which fill `delegated_by` and `on_behalf_of`.
 */
export type PolicyPartialRequest = Omit<PolicyRequest, "context"> & {
  delegation?: KnownCallerFacts | undefined;
};

/**
 * What policy could answer to a request whose context is not known yet (partial evaluation).
 * `possible`: some context would allow it, perhaps with a human approval, or the policies depend
 * on the context in a way only a real request settles; `false` only for a definite deny, whatever
 * the context.
 */
export interface PolicyOutlook {
  readonly possible: boolean;
  /** A definite deny: the forbid policies that decided it (none when no policy permits). */
  readonly policies: string[];
  /** Evaluation errors; a request Cedar cannot evaluate is not possible. */
  readonly errors: string[];
}

export type PolicyReloadResult = { ok: true } | { ok: false; error: string };

export interface PolicyEngine {
  /** The policy file, if one is configured. */
  readonly file: string | undefined;
  /** Ids of the loaded policies; empty when everything is denied. The same array until the next load. */
  readonly policyIds: readonly string[];
  /**
   * Decides one request. A deny that would be an allow with `approved: true`
   * is `approval_required`, citing the policies that would allow it.
   * Never throws: a request Cedar cannot evaluate is a deny with errors.
   */
  decide(req: PolicyRequest): PolicyDecision;
  /**
   * Whether a request could be allowed whatever the request would carry (Cedar partial evaluation:
   * the caller's delegation known, every field the request decides unknown): `possible: false`
   * only for a definite deny. Answers are cached per policy set (a reload starts afresh) and
   * request. Never throws.
   */
  couldAllow(req: PolicyPartialRequest): PolicyOutlook;
  /** Re-reads the file; on failure the previous policy set stays in force. */
  reload(): Promise<PolicyReloadResult>;
}

export interface LoadPolicyOptions {
  /** `policy.file`; absent or missing means deny everything. */
  file?: string;
}
