import { LeaseholdClientError } from "../client/errors.js";
import { TargetError } from "./runners/login.js";

/**
 * What a failed tool call tells the model: what happened and what it may do next. Never a stack
 * trace; the messages come from the sidecar's answers and the targets' refusals, which carry no
 * password or token.
 */
export function toolErrorText(err: unknown, leaseId?: string): string {
  const lease = leaseId ? `lease ${leaseId}` : "the lease";
  if (err instanceof TargetError) {
    return err.refusedByListener
      ? `The sidecar's listener refused this statement: ${err.message}. It is not allowed on this resource whatever you retry; do the work another way or ask an operator.`
      : `The target refused the call: ${err.message}. Fix the statement or command and try again.`;
  }
  if (err instanceof LeaseholdClientError) {
    const hint = err.hint ? ` (${err.hint})` : "";
    switch (err.code) {
      case "policy_denied":
        return `Policy denied this: ${err.message}${hint}. You may try another intent or resource (list_resources shows what you may use), or ask an operator to allow it.`;
      case "lease_expired":
        return `${cap(lease)} has expired: ${err.message}. Its password is being rotated; call checkout again for a new lease.`;
      case "lease_revoked":
        return `${cap(lease)} was revoked by an operator: ${err.message}. Call checkout again only if the work is still wanted; an operator may have stopped it on purpose.`;
      case "caller_mismatch":
        return `${cap(lease)} belongs to another process: ${err.message}. Call checkout again from here.`;
      case "approval_denied":
        return `An approver denied the checkout: ${err.message}. Do not ask again unchanged; explain the need to an operator or choose another way.`;
      case "approval_expired":
      case "approval_timeout":
        return `No approver decided in time (${err.message}). Ask an operator to look at the approvals queue, then call checkout again.`;
      case "resource_busy":
        return `Every account of the resource is leased now${err.retryAfter ? `; try again in ${err.retryAfter} s` : "; try again later"}.`;
      case "rate_limited":
        return `Too many requests${err.retryAfter ? `; try again in ${err.retryAfter} s` : "; try again later"}.`;
      case "not_found":
        return `Not found: ${err.message}. list_resources names the resources you may check out.`;
      case "invalid_request":
        return `The request was refused as invalid: ${err.message}${details(err)}. Fix the arguments and try again.`;
      case "no_proxy":
        return `${err.message}.`;
      case "unreachable":
      case "upstream_unavailable":
        return `The credential service is unavailable (${err.message}). Try again later.`;
      case "aborted":
        return "The call was cancelled.";
      default:
        return `The sidecar refused this (${err.code}): ${err.message}.`;
    }
  }
  if (err instanceof UnknownLeaseError) return err.message;
  return `The MCP server failed: ${err instanceof Error ? err.message : String(err)}.`;
}

/** A lease id this session does not hold. */
export class UnknownLeaseError extends Error {
  override readonly name = "UnknownLeaseError";
  constructor(id: string) {
    super(
      `This session holds no lease ${id}. Use the lease_id checkout returned in this session, or call checkout.`,
    );
  }
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function details(err: LeaseholdClientError): string {
  return err.details?.length ? ` (${err.details.map((d) => `${d.field}: ${d.message}`).join("; ")})` : "";
}
