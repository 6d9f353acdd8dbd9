import { LeaseholdError } from "../errors.js";
import type { LeaseStore, OneTimeSpend } from "../leases/index.js";

/** What an agent's requests are counted as, each kind apart. */
export type AgentRateKind = "checkout" | "tool_call" | "catalog";

const WHAT: Readonly<Record<AgentRateKind, string>> = {
  checkout: "checkouts",
  tool_call: "tool calls without a lease",
  catalog: "catalog reads",
};

/**
 * Counts one request of `kind` by `agent` in the current minute and refuses it (429
 * `rate_limited`, with `retry_after`) beyond `perMinute`. Each kind has its own count; 0 or
 * absent means no limit.
 */
export async function limitAgentRate(
  leases: Pick<LeaseStore, "hit">,
  kind: AgentRateKind,
  agent: string,
  perMinute: number | undefined,
): Promise<void> {
  if (!perMinute) return;
  refuseBeyondRate(kind, perMinute, await leases.hit(rateSubject(kind, agent), 60));
}

/**
 * {@link limitAgentRate} for a checkout, which also needs the agent's active lease count: both
 * in one round trip (`LeaseStore.hitAndCount`). Returns the count. With `spend` (the identity
 * token's one-time jti) that round trip spends it first: a replay is refused (401, the replay
 * guard's words) before the request is counted or anything else is done.
 */
export async function limitAgentRateAndCount(
  leases: Pick<LeaseStore, "hitAndCount" | "activeCount">,
  kind: AgentRateKind,
  agent: string,
  perMinute: number | undefined,
  spend?: OneTimeSpend | undefined,
): Promise<number> {
  if (!perMinute && spend === undefined) return leases.activeCount(agent);
  const got = await leases.hitAndCount(rateSubject(kind, agent), 60, agent, spend);
  // The replay guard's refusal, word for word (identity/replay-guard.ts).
  if (got === "replayed")
    throw new LeaseholdError("unauthenticated", "identity token was already used (replay)");
  if (perMinute) refuseBeyondRate(kind, perMinute, got);
  return got.activeLeases;
}

const rateSubject = (kind: AgentRateKind, agent: string) => `${kind}:${agent}`;

/** @throws 429 rate_limited when `count` is beyond `perMinute`. */
function refuseBeyondRate(
  kind: AgentRateKind,
  perMinute: number,
  { count, resetIn }: { count: number; resetIn: number },
): void {
  if (count > perMinute) {
    throw new LeaseholdError("rate_limited", `more than ${perMinute} ${WHAT[kind]} a minute`, {
      retryAfter: resetIn,
    });
  }
}
