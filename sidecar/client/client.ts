import { mintIdentityAssertion } from "../identity/index.js";
import { createDpopKey, type DpopKey } from "./dpop-key.js";
import { LeaseholdClientError } from "./errors.js";
import { RevealedCredential } from "./revealed-credential.js";
import { type Renewal, startRenewal } from "./renewal.js";
import { answerError, createTransport, type Transport, type TransportResponse } from "./transport.js";
import type {
  ActClaim,
  CheckoutRequest,
  ClientOptions,
  Credential,
  Lease,
  LeaseHandle,
  LeaseholdClient,
  ToolCall,
} from "./types.js";

const DEFAULT_APPROVAL_TIMEOUT_MS = 15 * 60_000;

interface Issued {
  lease: Lease;
  token: string;
  tokenType: "Bearer" | "DPoP";
}

interface ApprovalView {
  id: string;
  status: string;
  reason?: string;
  lease?: Lease;
  token?: string;
  token_type?: string;
}

/**
 * Creates an agent's client of the sidecar. Identity assertions are minted from `keyFile` for
 * each checkout and approval poll; with `dpop` (the default) every lease token is bound to a
 * key this client creates and never exports, and each use carries a fresh DPoP proof.
 * @throws Error when neither or both of `url` and `socketPath` are given.
 */
export function createClient(opts: ClientOptions): LeaseholdClient {
  if ((opts.url === undefined) === (opts.socketPath === undefined)) {
    throw new Error("give exactly one of url and socketPath");
  }
  if (typeof opts.keyFile !== "string" || opts.keyFile.length === 0) throw new Error("keyFile is required");
  const transport: Transport = createTransport(
    opts.url !== undefined ? { url: opts.url } : { socketPath: opts.socketPath ?? "" },
  );
  const audience = opts.audience ?? "leasehold";
  const useDpop = opts.dpop ?? true;
  const timeoutMs = opts.requestTimeoutMs ?? 30_000;
  const pollMs = opts.approvalPollIntervalMs ?? 1000;
  let dpopKey: Promise<DpopKey> | undefined;
  const key = (): Promise<DpopKey> => {
    dpopKey ??= createDpopKey();
    return dpopKey;
  };

  /** A request authenticated by a fresh identity assertion (checkout, approval polls). */
  async function asAgent(
    method: "GET" | "POST",
    path: string,
    body: unknown,
    act: ActClaim | undefined,
    extraMs = 0,
    signal?: AbortSignal,
  ): Promise<TransportResponse> {
    const jwt = await mintIdentityAssertion({
      keyFile: opts.keyFile,
      audience,
      ttlSeconds: opts.assertionTtlSeconds ?? 60,
      ...(act === undefined ? {} : { extraClaims: { act } }),
    });
    const headers: Record<string, string> = { authorization: `Bearer ${jwt}` };
    if (useDpop) headers.dpop = await (await key()).proof(method, transport.htu(path));
    return transport.send({ method, path, headers, body, timeoutMs: timeoutMs + extraMs, signal });
  }

  /** A request authenticated by a lease token, with a DPoP proof when the token is bound. */
  async function asHolder(
    issued: Issued,
    method: "GET" | "POST" | "DELETE",
    path: string,
    body?: unknown,
  ): Promise<TransportResponse> {
    const headers: Record<string, string> = { authorization: `${issued.tokenType} ${issued.token}` };
    if (issued.tokenType === "DPoP") {
      headers.dpop = await (await key()).proof(method, transport.htu(path), issued.token);
    }
    return transport.send({ method, path, headers, body, timeoutMs });
  }

  async function awaitApproval(first: ApprovalView, req: CheckoutRequest): Promise<Issued> {
    const deadline = Date.now() + (req.approvalTimeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS);
    let approval = first;
    for (;;) {
      if (approval.status === "approved" && approval.lease && typeof approval.token === "string") {
        return { lease: approval.lease, token: approval.token, tokenType: tokenType(approval.token_type) };
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
      await sleep(Math.min(pollMs, Math.max(0, deadline - Date.now())), req.signal);
      const res = await asAgent(
        "GET",
        `/v1/approvals/${encodeURIComponent(approval.id)}`,
        undefined,
        req.act,
        0,
        req.signal,
      );
      if (res.status !== 200) throw answerError(res);
      approval = res.json.approval as ApprovalView;
    }
  }

  function handle(issued: Issued): LeaseHandle {
    const base = `/v1/leases/${encodeURIComponent(issued.lease.id)}`;
    let ended = false;
    return {
      get lease() {
        return issued.lease;
      },
      tokenType: issued.tokenType,
      async credential() {
        const res = await asHolder(issued, "GET", `${base}/credential`);
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
      async renew(ttl?: number) {
        const res = await asHolder(issued, "POST", `${base}/renew`, ttl === undefined ? {} : { ttl });
        if (res.status !== 200) throw answerError(res);
        issued.lease = res.json.lease as Lease;
        return issued.lease;
      },
      async reportToolCall(call: ToolCall) {
        const res = await asHolder(issued, "POST", `${base}/tool-calls`, { ...call });
        if (res.status !== 202) throw answerError(res);
      },
      async checkin() {
        if (ended) return;
        const res = await asHolder(issued, "DELETE", base);
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

  const client: LeaseholdClient = {
    async checkout(resource, req) {
      const body = {
        resource,
        task: req.task,
        intent: req.intent,
        ...(req.ttl === undefined ? {} : { ttl: req.ttl }),
        ...(req.wait === undefined ? {} : { wait: req.wait }),
      };
      const res = await asAgent("POST", "/v1/checkout", body, req.act, (req.wait ?? 0) * 1000, req.signal);
      if (res.status === 201) {
        return handle({
          lease: res.json.lease as Lease,
          token: String(res.json.token),
          tokenType: tokenType(res.json.token_type),
        });
      }
      if (res.status === 202) return handle(await awaitApproval(res.json.approval as ApprovalView, req));
      throw answerError(res);
    },

    async withCredential<T>(
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
    },
  };
  return client;
}

function tokenType(v: unknown): "Bearer" | "DPoP" {
  return v === "DPoP" ? "DPoP" : "Bearer";
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
