import type { AuditSink } from "../audit/index.js";
import { attestedCaller, requirePinnedCaller } from "./caller-binding.js";
import { identityToken, type LeaseAuth, type PresentedToken } from "./lease-auth.js";
import type { IdentityPort, VerifiedCaller } from "./ports.js";
import type { RequestMeta } from "./request-meta.js";

export interface AgentRequestDeps {
  readonly identity: IdentityPort;
  readonly auth: LeaseAuth;
  readonly audit: AuditSink;
}

/** How the identity JWT is used: a state-changing request spends its one-time `jti`. */
export interface AgentTokenUse {
  readonly oneTime: boolean;
  /** A delegation token from the token exchange (`X-Leasehold-Delegation`). */
  readonly delegation?: string | undefined;
}

/**
 * An agent's request made with its identity JWT and no lease, checked as a checkout checks its
 * caller: the token (spending its `jti` only when `use.oneTime`), the key's pin to local callers
 * (`allowedCallers`), and a DPoP proof when one is presented. Each refusal is a 401, the last two
 * audited.
 */
export async function verifyAgent(
  d: AgentRequestDeps,
  identity: string | PresentedToken,
  meta: RequestMeta,
  use: AgentTokenUse,
): Promise<{ caller: VerifiedCaller; jkt: string | undefined }> {
  const presented = identityToken(identity);
  const caller = await d.identity.verify(presented.token, {
    oneTime: use.oneTime,
    ...(use.delegation === undefined ? {} : { delegation: use.delegation }),
  });
  const attempt = {
    agent: caller.subject,
    agent_chain: caller.delegation?.chain,
    request_id: meta.requestId,
  };
  if (caller.allowedCallers !== undefined) {
    await requirePinnedCaller(caller, attestedCaller(meta), d.audit, attempt);
  }
  const jkt = await d.auth.proofAtIssue(presented, attempt);
  return { caller, jkt };
}
