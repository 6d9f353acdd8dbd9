import type { AuditSink } from "../audit/index.js";
import type { LeaseStore } from "../leases/index.js";
import { type AgentRateKind, limitAgentRate } from "./agent-rate.js";
import { attestedCaller, requirePinnedCaller } from "./caller-binding.js";
import { identityToken, type LeaseAuth, type PresentedToken } from "./lease-auth.js";
import type { IdentityPort, VerifiedCaller } from "./ports.js";
import type { RequestMeta } from "./request-meta.js";

export interface AgentRequestDeps {
  readonly identity: IdentityPort;
  readonly auth: LeaseAuth;
  readonly audit: AuditSink;
  /** The per-agent request counts (`limitAgentRate`). */
  readonly leases: Pick<LeaseStore, "hit">;
}

/** How the identity JWT is used: a state-changing request spends its one-time `jti`. */
export interface AgentTokenUse {
  readonly oneTime: boolean;
  /** A delegation token from the token exchange (`X-Leasehold-Delegation`). */
  readonly delegation?: string | undefined;
  /** The agent's count this request goes on, and its limit a minute (0 or absent: none). */
  readonly rate: { readonly kind: AgentRateKind; readonly perMinute?: number | undefined };
}

/**
 * An agent's request made with its identity JWT and no lease, checked as a checkout checks its
 * caller: the token (spending its `jti` only when `use.oneTime`), then the agent's rate (before
 * any work a refused request could make the sidecar do: attestation, proof checks, audit
 * records), then the key's pin to local callers (`allowedCallers`) and a DPoP proof when one is
 * presented. Each refusal is a 401 (a 429 beyond the rate), the last two audited.
 */
export async function verifyAgent(
  d: AgentRequestDeps,
  identity: string | PresentedToken,
  meta: RequestMeta,
  use: AgentTokenUse,
): Promise<{ caller: VerifiedCaller; jkt: string | undefined }> {
  const presented = identityToken(identity);
  const caller = await d.identity.verify(
    presented.token,
    use.delegation === undefined
      ? { oneTime: use.oneTime }
      : { oneTime: use.oneTime, delegation: use.delegation },
  );
  const attempt = await vetAgent(d, caller, meta, use.rate);
  const jkt = await d.auth.proofAtIssue(presented, attempt);
  return { caller, jkt };
}

/**
 * The checks {@link verifyAgent} makes of a caller once its token is verified (and all of them
 * for a caller `/mcp`'s session verified): the agent's rate first, then the key's pin to local
 * callers (`allowedCallers`), audited when refused. Returns the attempt's audit fields.
 */
export async function vetAgent(
  d: Pick<AgentRequestDeps, "audit" | "leases">,
  caller: VerifiedCaller,
  meta: RequestMeta,
  rate: AgentTokenUse["rate"],
): Promise<{ agent: string; agent_chain: readonly string[] | undefined; request_id: string }> {
  await limitAgentRate(d.leases, rate.kind, caller.subject, rate.perMinute);
  const attempt = {
    agent: caller.subject,
    agent_chain: caller.delegation?.chain,
    request_id: meta.requestId,
  };
  if (caller.allowedCallers !== undefined) {
    await requirePinnedCaller(caller, attestedCaller(meta), d.audit, attempt);
  }
  return attempt;
}
