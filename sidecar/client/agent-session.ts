import { mintIdentityAssertion } from "../identity/index.js";
import { createDpopKey, type DpopKey } from "./dpop-key.js";
import { LeaseholdClientError } from "./errors.js";
import { createTransport, type Transport, type TransportResponse } from "./transport.js";
import type { ActClaim, ClientOptions, Lease } from "./types.js";

/** A lease as the sidecar issued it, with the token that uses it. */
export interface Issued {
  lease: Lease;
  token: string;
  tokenType: "Bearer" | "DPoP";
  /** The resource's listener, when the checkout named one. */
  proxy?: { host: string; port: number; username: string };
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
    /** Whether to bind the token to this session's DPoP key; the client's `dpop` when absent. */
    dpop?: boolean,
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
 * @throws LeaseholdClientError `invalid_options` when neither or both of `url` and `socketPath`
 *   are given, the url is not an http(s) URL, or no keyFile.
 */
export function createAgentSession(opts: ClientOptions): AgentSession {
  const url = opts.url === "" ? undefined : opts.url;
  const socketPath = opts.socketPath === "" ? undefined : opts.socketPath;
  if ((url === undefined) === (socketPath === undefined)) {
    throw new LeaseholdClientError(
      "invalid_options",
      "give exactly one of url and socketPath (or set LEASEHOLD_ADDR or LEASEHOLD_SOCKET)",
    );
  }
  const keyFile = opts.keyFile;
  if (typeof keyFile !== "string" || keyFile.length === 0) {
    throw new LeaseholdClientError("invalid_options", "keyFile is required (or set LEASEHOLD_AGENT_KEY)");
  }
  let transport: Transport;
  try {
    transport = createTransport(url !== undefined ? { url } : { socketPath: socketPath ?? "" });
  } catch (err) {
    throw new LeaseholdClientError("invalid_options", `url: ${(err as Error).message}`);
  }
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
    async asAgent(method, path, body, act, extraMs = 0, signal, dpop = useDpop) {
      const jwt = await mintIdentityAssertion({
        keyFile,
        audience,
        ttlSeconds: opts.assertionTtlSeconds ?? 60,
        ...(act === undefined ? {} : { extraClaims: { act } }),
      }).catch((err: unknown) => {
        throw new LeaseholdClientError(
          "bad_key",
          `cannot sign an identity assertion with the key file ${keyFile}: ${(err as Error).message}`,
          0,
          undefined,
          undefined,
          { cause: err },
        );
      });
      const headers: Record<string, string> = { authorization: `Bearer ${jwt}` };
      if (dpop) headers.dpop = await (await key()).proof(method, transport.htu(path));
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
