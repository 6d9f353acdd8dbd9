import { createAgentSession, tokenType } from "./agent-session.js";
import { type ApprovalView, awaitApproval } from "./approval-wait.js";
import { clientOptionsFromEnv } from "./env.js";
import { LeaseholdClientError } from "./errors.js";
import { proxyOf } from "./proxy-block.js";
import { type LiveHandles, leaseHandle } from "./lease-handle.js";
import { RevealedCredential } from "./revealed-credential.js";
import { type Renewal, startRenewal } from "./renewal.js";
import { answerError } from "./transport.js";
import type {
  AgentRequestOptions,
  CatalogResource,
  CheckoutRequest,
  ClientOptions,
  CompleteTaskOptions,
  Credential,
  Lease,
  LeaseHandle,
  LeaseholdClient,
  ProxyConnection,
  ToolCall,
} from "./types.js";

/**
 * Creates an agent's client of the sidecar. Identity assertions are minted from `keyFile` for
 * each checkout and approval poll; with `dpop` (the default) every lease token is bound to a
 * key this client creates and never exports, and each use carries a fresh DPoP proof. With no
 * options (or some missing), `LEASEHOLD_ADDR` / `LEASEHOLD_SOCKET` and `LEASEHOLD_AGENT_KEY`
 * fill them in.
 * @throws LeaseholdClientError `invalid_options` when neither or both of `url` and `socketPath`
 *   are given, or no key file.
 */
export function createClient(opts: ClientOptions = {}): LeaseholdClient {
  const session = createAgentSession(clientOptionsFromEnv(opts));
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
      req.dpop,
    );
    if (res.status === 201) {
      return leaseHandle(
        session,
        {
          lease: res.json.lease as Lease,
          token: String(res.json.token),
          tokenType: tokenType(res.json.token_type),
          ...proxyOf(res.json.proxy),
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

  async function resources(options: AgentRequestOptions = {}): Promise<CatalogResource[]> {
    const res = await session.asAgent("GET", "/v1/catalog", undefined, options.act, 0, options.signal);
    if (res.status !== 200) throw answerError(res);
    return res.json.resources as CatalogResource[];
  }

  async function reportToolCall(call: ToolCall, options: AgentRequestOptions = {}): Promise<void> {
    const res = await session.asAgent("POST", "/v1/tool-calls", { ...call }, options.act, 0, options.signal);
    if (res.status !== 202) throw answerError(res);
  }

  const client: LeaseholdClient = {
    checkout,
    completeTask,
    resources,
    reportToolCall,
    withCredential: (resource, req, fn) => withCredential(client, resource, req, fn),
    withConnection: (resource, req, fn) => withConnection(client, resource, req, fn),
  };
  return client;
}

/** A refused reveal of a listener-only resource, with where the SDK does proxy mode. */
function proxyHint(err: unknown): unknown {
  if (!(err instanceof LeaseholdClientError) || err.code !== "policy_denied" || !/proxy/.test(err.message)) {
    return err;
  }
  return new LeaseholdClientError(
    err.code,
    `${err.message} (with this SDK: withConnection)`,
    err.status,
    err.requestId,
    err.retryAfter,
    {
      cause: err,
      ...(err.details === undefined ? {} : { details: err.details }),
      ...(err.hint === undefined ? {} : { hint: err.hint }),
    },
  );
}

/**
 * Renews `lease` while `use` runs and checks it in whatever `use` does: the callback's error
 * matters more; a lease whose check-in failed then still ends at its expiry.
 */
async function whileLeased<T>(
  lease: LeaseHandle,
  ttl: number | undefined,
  use: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  let renewal: Renewal | undefined;
  let result: T;
  try {
    renewal = startRenewal(lease, ttl);
    result = await use(renewal.signal);
  } catch (err) {
    await renewal?.stop();
    await lease.checkin().catch(() => undefined);
    throw err;
  }
  await renewal.stop();
  await lease.checkin();
  return result;
}

/** Checkout with a Bearer token, log in at the listener, renew while `fn` runs, and check in. */
async function withConnection<T>(
  client: LeaseholdClient,
  resource: string,
  req: CheckoutRequest,
  fn: (conn: ProxyConnection, lease: Lease) => Promise<T>,
): Promise<T> {
  const lease = await client.checkout(resource, { ...req, dpop: false });
  return whileLeased(lease, req.ttl, async (signal) => {
    const login = lease.proxyLogin();
    const conn = Object.defineProperties(
      { host: login.host, port: login.port, user: login.user },
      {
        password: { get: () => login.password, enumerable: false },
        expiresAt: { get: () => new Date(lease.lease.expires_at), enumerable: true },
        signal: { value: signal, enumerable: false },
      },
    ) as unknown as ProxyConnection;
    return fn(conn, lease.lease);
  });
}

/** Checkout, reveal, renew while `fn` runs, and check in whatever `fn` does. */
async function withCredential<T>(
  client: LeaseholdClient,
  resource: string,
  req: CheckoutRequest,
  fn: (cred: Credential, lease: Lease) => Promise<T>,
): Promise<T> {
  const lease = await client.checkout(resource, req);
  return whileLeased(lease, req.ttl, async (signal) => {
    const revealed = await lease.credential().catch((err: unknown) => {
      throw proxyHint(err);
    });
    return fn(new RevealedCredential(revealed, lease, signal), lease.lease);
  });
}
