import { LeaseholdError } from "../errors.js";
import type { LeaseStore } from "../leases/index.js";

/**
 * Counts one request of `kind` by `agent` in the current minute and refuses it (429
 * `rate_limited`, with `retry_after`) beyond `perMinute`. Each kind has its own count; 0 or
 * absent means no limit.
 */
export async function limitAgentRate(
  leases: Pick<LeaseStore, "hit">,
  kind: "checkout" | "tool_call",
  agent: string,
  perMinute: number | undefined,
): Promise<void> {
  if (!perMinute) return;
  const { count, resetIn } = await leases.hit(`${kind}:${agent}`, 60);
  if (count > perMinute) {
    const what = kind === "checkout" ? "checkouts" : "tool calls without a lease";
    throw new LeaseholdError("rate_limited", `more than ${perMinute} ${what} a minute`, {
      retryAfter: resetIn,
    });
  }
}
