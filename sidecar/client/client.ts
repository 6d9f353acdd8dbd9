import { createAgentSession, tokenType } from "./agent-session.js";
import { type ApprovalView, awaitApproval } from "./approval-wait.js";
import { type LiveHandles, leaseHandle } from "./lease-handle.js";
import { RevealedCredential } from "./revealed-credential.js";
import { type Renewal, startRenewal } from "./renewal.js";
import { answerError } from "./transport.js";
import type {
  CheckoutRequest,
  ClientOptions,
  CompleteTaskOptions,
  Credential,
  Lease,
  LeaseHandle,
  LeaseholdClient,
} from "./types.js";

/**
 * Creates an agent's client of the sidecar. Identity assertions are minted from `keyFile` for
 * each checkout and approval poll; with `dpop` (the default) every lease token is bound to a
 * key this client creates and never exports, and each use carries a fresh DPoP proof.
 * @throws Error when neither or both of `url` and `socketPath` are given.
 */
export function createClient(opts: ClientOptions): LeaseholdClient {
  const session = createAgentSession(opts);
  const live: LiveHandles = new Map();

  async function checkout(resource: string, req: CheckoutRequest): Promise<LeaseHandle> {
    const body = {
      resource,
      task: req.task,
      intent: req.intent,
      ...(req.ttl === undefined ? {} : { ttl: req.ttl }),
      ...(req.wait === undefined ? {} : { wait: req.wait }),
    };
    const res = await session.asAgent(
      "POST",
      "/v1/checkout",
      body,
      req.act,
      (req.wait ?? 0) * 1000,
      req.signal,
    );
    if (res.status === 201) {
      return leaseHandle(
        session,
        {
          lease: res.json.lease as Lease,
          token: String(res.json.token),
          tokenType: tokenType(res.json.token_type),
        },
        live,
      );
    }
    if (res.status === 202) {
      return leaseHandle(session, await awaitApproval(session, res.json.approval as ApprovalView, req), live);
    }
    throw answerError(res);
  }

  async function completeTask(taskId: string, options: CompleteTaskOptions = {}): Promise<Lease[]> {
    const path = `/v1/tasks/${encodeURIComponent(taskId)}/complete`;
    const res = await session.asAgent("POST", path, undefined, options.act, 0, options.signal);
    if (res.status !== 202) throw answerError(res);
    const ended = res.json.leases as Lease[];
    // This client's handles of these leases are checked in already: their checkin resolves.
    for (const lease of ended) live.get(lease.id)?.(lease);
    return ended;
  }

  const client: LeaseholdClient = {
    checkout,
    completeTask,
    withCredential: (resource, req, fn) => withCredential(client, resource, req, fn),
  };
  return client;
}

/** Checkout, reveal, renew while `fn` runs, and check in whatever `fn` does. */
async function withCredential<T>(
  client: LeaseholdClient,
  resource: string,
  req: CheckoutRequest,
  fn: (cred: Credential, lease: Lease) => Promise<T>,
): Promise<T> {
  const lease = await client.checkout(resource, req);
  let renewal: Renewal | undefined;
  let result: T;
  try {
    const revealed = await lease.credential();
    renewal = startRenewal(lease, req.ttl);
    result = await fn(new RevealedCredential(revealed, lease, renewal.signal), lease.lease);
  } catch (err) {
    await renewal?.stop();
    // The callback's error matters more; a lease whose check-in failed still ends at its expiry.
    await lease.checkin().catch(() => undefined);
    throw err;
  }
  await renewal?.stop();
  await lease.checkin();
  return result;
}
