import { type AgentSession, type Issued, tokenType } from "./agent-session.js";
import { LeaseholdClientError } from "./errors.js";
import { proxyOf } from "./proxy-block.js";
import { answerError } from "./transport.js";
import type { CheckoutRequest, Lease } from "./types.js";

const DEFAULT_APPROVAL_TIMEOUT_MS = 15 * 60_000;

/** An approval as the sidecar shows it to the agent that asked. */
export interface ApprovalView {
  id: string;
  status: string;
  reason?: string;
  lease?: Lease;
  token?: string;
  token_type?: string;
  proxy?: unknown;
}

/**
 * Polls a pending checkout's approval until it is decided: the issued lease once approved.
 * @throws LeaseholdClientError approval_denied, approval_expired, approval_timeout (after
 *   `req.approvalTimeoutMs`, default 15 min) or aborted (`req.signal`).
 */
export async function awaitApproval(
  session: AgentSession,
  first: ApprovalView,
  req: CheckoutRequest,
): Promise<Issued> {
  const deadline = Date.now() + (req.approvalTimeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS);
  let approval = first;
  req.onPending?.({ id: first.id, status: first.status });
  for (;;) {
    if (approval.status === "approved" && approval.lease && typeof approval.token === "string") {
      return {
        lease: approval.lease,
        token: approval.token,
        tokenType: tokenType(approval.token_type),
        ...proxyOf(approval.proxy),
      };
    }
    if (approval.status === "denied") {
      throw new LeaseholdClientError(
        "approval_denied",
        `the checkout was denied by an approver${approval.reason ? `: ${approval.reason}` : ""}`,
      );
    }
    if (approval.status === "expired") {
      throw new LeaseholdClientError("approval_expired", "no approver decided before the request expired");
    }
    if (Date.now() >= deadline) {
      throw new LeaseholdClientError(
        "approval_timeout",
        `approval ${approval.id} is still ${approval.status}`,
      );
    }
    await sleep(Math.min(session.pollMs, Math.max(0, deadline - Date.now())), req.signal);
    const res = await session.asAgent(
      "GET",
      `/v1/approvals/${encodeURIComponent(approval.id)}`,
      undefined,
      req.act,
      0,
      req.signal,
      req.dpop,
    );
    if (res.status !== 200) throw answerError(res);
    approval = res.json.approval as ApprovalView;
    if (approval.status === "pending") req.onPoll?.({ id: approval.id, status: approval.status });
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new LeaseholdClientError("aborted", "the checkout was aborted"));
      return;
    }
    const onAbort = () => {
      clearTimeout(t);
      reject(new LeaseholdClientError("aborted", "the checkout was aborted"));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
