import type { LeaseRecord } from "../leases/index.js";

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

/** A lease as the HTTP API shows it: RFC 3339 UTC times, no internal fields. */
export function leaseView(l: LeaseRecord) {
  return {
    id: l.id,
    resource: l.resource,
    account: l.account,
    agent: l.agent,
    ...(l.agent_chain?.length ? { agent_chain: l.agent_chain } : {}),
    ...(l.approver ? { approver: l.approver } : {}),
    task: l.task,
    intent: l.intent,
    state: l.state,
    issued_at: iso(l.issued_at),
    expires_at: iso(l.expires_at),
    max_expires_at: iso(l.max_expires_at),
    ...(l.ended_at === undefined ? {} : { ended_at: iso(l.ended_at) }),
    ...(l.end_reason === undefined ? {} : { end_reason: l.end_reason }),
  };
}

export type LeaseView = ReturnType<typeof leaseView>;
