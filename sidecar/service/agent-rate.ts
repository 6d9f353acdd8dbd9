import { LeaseholdError } from "../errors.js";
import type { LeaseStore } from "../leases/index.js";

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
  const { count, resetIn } = await leases.hit(`${kind}:${agent}`, 60);
  if (count > perMinute) {
    throw new LeaseholdError("rate_limited", `more than ${perMinute} ${WHAT[kind]} a minute`, {
      retryAfter: resetIn,
    });
  }
}
