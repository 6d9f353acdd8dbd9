import type { AgentSession, Issued } from "./agent-session.js";
import { LeaseholdClientError } from "./errors.js";
import { answerError } from "./transport.js";
import type { Lease, LeaseHandle, ToolCall } from "./types.js";

/**
 * The client's live handles by lease id, each with what marks it ended: a lease its agent ended by
 * completing the task (`completeTask`) is checked in already, and its handle's `checkin` resolves.
 * A handle leaves once checked in.
 */
export type LiveHandles = Map<string, (lease: Lease) => void>;

/** The holder's handle of an issued lease: every call carries the lease token (and its DPoP proof). */
export function leaseHandle(session: AgentSession, issued: Issued, live?: LiveHandles): LeaseHandle {
  const id = issued.lease.id;
  const base = `/v1/leases/${encodeURIComponent(id)}`;
  let ended = false;
  live?.set(id, (lease) => {
    ended = true;
    issued.lease = lease;
    live.delete(id);
  });
  return {
    get lease() {
      return issued.lease;
    },
    tokenType: issued.tokenType,
    ...(issued.proxy === undefined ? {} : { proxy: issued.proxy }),
    leaseToken: () => issued.token,
    proxyLogin() {
      const p = issued.proxy;
      if (p === undefined) {
        throw new LeaseholdClientError(
          "no_proxy",
          issued.tokenType === "DPoP"
            ? `lease ${id} is bound to a DPoP key: listeners accept only Bearer tokens (check out with dpop: false)`
            : `the sidecar named no listener for resource ${issued.lease.resource}`,
        );
      }
      return { host: p.host, port: p.port, user: p.username, password: issued.token };
    },
    async credential() {
      const res = await session.asHolder(issued, "GET", `${base}/credential`);
      if (res.status !== 200) throw answerError(res);
      const { username, password, connection, expires_at } = res.json;
      if (typeof username !== "string" || typeof password !== "string" || typeof expires_at !== "string") {
        throw new LeaseholdClientError("bad_response", "the credential answer lacks username or password");
      }
      return {
        username,
        password,
        connection: (connection ?? {}) as Record<string, unknown>,
        expires_at,
      };
    },
    async status() {
      const res = await session.asHolder(issued, "GET", base);
      if (res.status !== 200) throw answerError(res);
      issued.lease = res.json as unknown as Lease;
      return issued.lease;
    },
    async renew(ttl?: number) {
      const res = await session.asHolder(issued, "POST", `${base}/renew`, ttl === undefined ? {} : { ttl });
      if (res.status !== 200) throw answerError(res);
      issued.lease = res.json.lease as Lease;
      return issued.lease;
    },
    async reportToolCall(call: ToolCall) {
      const res = await session.asHolder(issued, "POST", `${base}/tool-calls`, { ...call });
      if (res.status !== 202) throw answerError(res);
    },
    async checkin() {
      if (ended) return;
      const res = await session.asHolder(issued, "DELETE", base);
      live?.delete(id);
      if (res.status === 202) {
        ended = true;
        issued.lease = (res.json.lease as Lease | undefined) ?? issued.lease;
        return;
      }
      const err = answerError(res);
      // Expired or revoked already: the sidecar has ended it and rotates the password anyway.
      if (err.code === "lease_expired" || err.code === "lease_revoked") {
        ended = true;
        return;
      }
      throw err;
    },
  };
}
