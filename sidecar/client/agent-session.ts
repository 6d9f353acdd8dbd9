import { mintIdentityAssertion } from "../identity/index.js";
import { createDpopKey, type DpopKey } from "./dpop-key.js";
import { createTransport, type Transport, type TransportResponse } from "./transport.js";
import type { ActClaim, ClientOptions, Lease } from "./types.js";

/** A lease as the sidecar issued it, with the token that uses it. */
export interface Issued {
  lease: Lease;
  token: string;
  tokenType: "Bearer" | "DPoP";
}

/** How one client talks to the sidecar: as the agent (identity assertion) or as a lease's holder. */
export interface AgentSession {
  /** Approval polls are this far apart, ms. */
  readonly pollMs: number;
  /** A request authenticated by a fresh identity assertion (checkout, approval polls). */
  asAgent(
    method: "GET" | "POST",
    path: string,
    body: unknown,
    act: ActClaim | undefined,
    extraMs?: number,
    signal?: AbortSignal,
  ): Promise<TransportResponse>;
  /** A request authenticated by a lease token, with a DPoP proof when the token is bound. */
  asHolder(
    issued: Issued,
    method: "GET" | "POST" | "DELETE",
    path: string,
    body?: unknown,
  ): Promise<TransportResponse>;
}

/**
 * The session of a client built from `opts`. The DPoP key is created on first use and never
 * leaves this session, so every token it binds can be used only from here.
 * @throws Error when neither or both of `url` and `socketPath` are given, or no keyFile.
 */
export function createAgentSession(opts: ClientOptions): AgentSession {
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
  let dpopKey: Promise<DpopKey> | undefined;
  const key = (): Promise<DpopKey> => {
    dpopKey ??= createDpopKey();
    return dpopKey;
  };
  return {
    pollMs: opts.approvalPollIntervalMs ?? 1000,
    async asAgent(method, path, body, act, extraMs = 0, signal) {
      const jwt = await mintIdentityAssertion({
        keyFile: opts.keyFile,
        audience,
        ttlSeconds: opts.assertionTtlSeconds ?? 60,
        ...(act === undefined ? {} : { extraClaims: { act } }),
      });
      const headers: Record<string, string> = { authorization: `Bearer ${jwt}` };
      if (useDpop) headers.dpop = await (await key()).proof(method, transport.htu(path));
      return transport.send({ method, path, headers, body, timeoutMs: timeoutMs + extraMs, signal });
    },
    async asHolder(issued, method, path, body) {
      const headers: Record<string, string> = { authorization: `${issued.tokenType} ${issued.token}` };
      if (issued.tokenType === "DPoP") {
        headers.dpop = await (await key()).proof(method, transport.htu(path), issued.token);
      }
      return transport.send({ method, path, headers, body, timeoutMs });
    },
  };
}

/** The token type of an answer: DPoP when the sidecar says so, else Bearer. */
export function tokenType(v: unknown): "Bearer" | "DPoP" {
  return v === "DPoP" ? "DPoP" : "Bearer";
}
