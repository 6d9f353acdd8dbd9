import { LeaseholdClientError } from "../client/errors.js";
import type { Lease } from "../client/types.js";
import { LeaseholdError } from "../errors.js";
import type { CheckoutOk, LeaseService, RequestMeta, VerifiedCaller } from "../service/index.js";
import type {
  McpBackend,
  McpCheckoutHooks,
  McpCheckoutRequest,
  McpLeaseHandle,
  McpResourceInfo,
  McpToolCall,
} from "./backend.js";
import type { McpRequestContext } from "./request-context.js";

export interface ServiceBackendOptions {
  /** The lease use cases (checkout for a verified caller, lease use, check-in, approval polls). */
  readonly leases: LeaseService;
  /** The resources `caller` could check out, as policy sees them. */
  readonly catalog: (caller: VerifiedCaller, meta: RequestMeta) => Promise<McpResourceInfo[]>;
  /** Records a tool call made without a lease, as `caller`'s (audited). */
  readonly toolCall: (caller: VerifiedCaller, call: McpToolCall, meta: RequestMeta) => Promise<void>;
  /** The `/mcp` request being served: the identity it proved, and its meta. */
  readonly context: () => McpRequestContext;
  /** How often a checkout waiting for a human polls its approval, ms. @default 1000 */
  readonly pollMs?: number | undefined;
}

/** The request's meta with the tool call's own cancellation joined to the HTTP request's. */
function withSignal(meta: RequestMeta, signal: AbortSignal | undefined): RequestMeta {
  if (!signal) return meta;
  return { ...meta, signal: meta.signal ? AbortSignal.any([meta.signal, signal]) : signal };
}

const sleep = (ms: number, signal: AbortSignal | undefined) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

/**
 * A service error as the tools read it: the code, message, details and hint an HTTP client would
 * have got (a fault's detail stays in the process: "internal error").
 */
function asClientError(err: unknown, requestId: string): unknown {
  if (!(err instanceof LeaseholdError)) return err;
  return new LeaseholdClientError(
    err.code,
    err.expose ? err.message : "internal error",
    err.status,
    requestId,
    err.retryAfter,
    {
      ...(err.expose && err.details ? { details: err.details } : {}),
      ...(err.expose && err.hint !== undefined ? { hint: err.hint } : {}),
    },
  );
}

/** Runs a service call; its errors as the tools read them. */
async function served<T>(meta: RequestMeta, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw asClientError(err, meta.requestId);
  }
}

/** The lease as the MCP tools see it (the HTTP API's view; no token). */
function asLease(view: CheckoutOk["lease"]): Lease {
  return view as Lease;
}

/**
 * The MCP tools' backend inside the sidecar (`POST /mcp`): it acts as the identity the current
 * `/mcp` request proved, through the service layer, with that request's meta (id, abort, the
 * local caller). Checkouts skip only the identity token (verified, and spent when it opened the
 * session): rate limit, caller attestation and binding, policy and approvals all run. Lease tokens
 * are Bearer and stay in this object; the leases a session still holds are checked in when it ends
 * ({@link ServiceMcpBackend.close}).
 */
export class ServiceMcpBackend implements McpBackend {
  private readonly held = new Map<string, string>();

  constructor(private readonly o: ServiceBackendOptions) {}

  async listResources(): Promise<McpResourceInfo[]> {
    const { caller, meta } = this.o.context();
    return served(meta, () => this.o.catalog(caller, meta));
  }

  async reportToolCall(call: McpToolCall): Promise<void> {
    const { caller, meta } = this.o.context();
    await served(meta, () => this.o.toolCall(caller, call, meta));
  }

  async checkout(req: McpCheckoutRequest, hooks?: McpCheckoutHooks): Promise<McpLeaseHandle> {
    const { caller, meta: requestMeta } = this.o.context();
    const meta = withSignal(requestMeta, hooks?.signal);
    const body = {
      resource: req.resource,
      task: req.task,
      intent: req.intent,
      ...(req.ttl === undefined ? {} : { ttl: req.ttl }),
    };
    const ok = await served(meta, async () => {
      const out = await this.o.leases.checkoutAs(caller, body, meta);
      return "approval" in out ? this.awaitApproval(caller, out.approval, meta, hooks) : out;
    });
    return this.hold(ok);
  }

  /** Checks in every lease this backend still holds (its session ended). */
  async close(): Promise<void> {
    const { meta } = this.o.context();
    const held = [...this.held.keys()];
    await Promise.all(
      held.map((id) =>
        this.o.leases.checkin(this.token(id), id, meta).catch((err: unknown) => {
          // An ended or expired lease needs no check-in; anything else ends by its TTL.
          if (!(err instanceof LeaseholdError)) throw err;
        }),
      ),
    );
    this.held.clear();
  }

  /** Polls a pending approval until it turns into a lease, is denied or expires, or the call is cancelled. */
  private async awaitApproval(
    caller: VerifiedCaller,
    pending: { readonly id: string; readonly status: string },
    meta: RequestMeta,
    hooks: McpCheckoutHooks | undefined,
  ): Promise<CheckoutOk> {
    let approval = pending;
    for (;;) {
      hooks?.onPending?.({ id: approval.id, status: approval.status });
      if (approval.status === "denied" || approval.status === "expired") {
        const code = approval.status === "denied" ? "approval_denied" : "approval_expired";
        throw new LeaseholdClientError(
          code,
          `approval ${approval.id} was ${approval.status}`,
          403,
          meta.requestId,
        );
      }
      await sleep(this.o.pollMs ?? 1000, meta.signal);
      if (meta.signal?.aborted) {
        const why = `the checkout was cancelled while approval ${approval.id} was pending`;
        throw new LeaseholdClientError("aborted", why, 0, meta.requestId);
      }
      const polled = (await this.o.leases.pollApprovalAs(caller, approval.id, meta)).approval as {
        id: string;
        status: string;
        lease?: CheckoutOk["lease"];
        token?: string;
        token_type?: CheckoutOk["token_type"];
      };
      if (polled.token !== undefined && polled.lease !== undefined) {
        return { lease: polled.lease, token: polled.token, token_type: polled.token_type ?? "Bearer" };
      }
      if (polled.lease !== undefined) {
        throw new LeaseholdError("conflict", `approval ${approval.id} was redeemed elsewhere`);
      }
      approval = polled;
    }
  }

  private token(id: string): string {
    const token = this.held.get(id);
    if (token === undefined)
      throw new LeaseholdClientError("not_found", `this session holds no lease ${id}`, 404);
    return token;
  }

  /** A handle on a lease just issued: its token stays in `held`. */
  private hold(ok: CheckoutOk): McpLeaseHandle {
    const id = ok.lease.id;
    this.held.set(id, ok.token);
    const { leases } = this.o;
    const meta = () => this.o.context().meta;
    // The lease as last seen, kept here: it outlives the token (after check-in).
    let last = asLease(ok.lease);
    const remember = (lease: Lease): Lease => {
      last = lease;
      return lease;
    };
    /** A use of the lease with its token, as the current request; errors as the tools read them. */
    const use = <T>(fn: (token: string, m: RequestMeta) => Promise<T>): Promise<T> => {
      const m = meta();
      return served(m, () => fn(this.token(id), m));
    };
    return {
      get lease() {
        return last;
      },
      proxyLogin: () => {
        const token = this.held.get(id);
        return ok.proxy && token !== undefined
          ? { host: ok.proxy.host, port: ok.proxy.port, user: ok.proxy.username, password: token }
          : undefined;
      },
      credential: async () => {
        const c = await use((t, m) => leases.credential(t, id, m));
        return { username: c.username, password: c.password, connection: c.connection };
      },
      status: async () => remember(asLease(await use((t, m) => leases.getOwn(t, id, m)))),
      renew: async (ttl) => {
        const r = await use((t, m) => leases.renew(t, id, ttl === undefined ? {} : { ttl }, m));
        return remember(asLease(r.lease));
      },
      checkin: async () => {
        const r = await use((t, m) => leases.checkin(t, id, m));
        remember(asLease(r.lease));
        this.held.delete(id);
      },
      reportToolCall: async (call) => {
        await use((t, m) => leases.toolCall(t, id, call, m));
      },
    };
  }
}
