/** A lease as the sidecar shows it (times in RFC 3339 UTC). */
export interface Lease {
  readonly id: string;
  readonly resource: string;
  readonly account: string;
  /** The acting agent's SPIFFE ID. */
  readonly agent: string;
  /** Delegators, nearest first, when the agent acted for someone. */
  readonly agent_chain?: readonly string[];
  /** The human who approved the checkout, if one had to. */
  readonly approver?: string;
  readonly task: { readonly id: string; readonly description?: string };
  readonly intent: { readonly action: string; readonly tool?: string };
  readonly state: "active" | "ended";
  readonly issued_at: string;
  readonly expires_at: string;
  readonly max_expires_at: string;
  readonly ended_at?: string;
  readonly end_reason?: "checkin" | "expired" | "revoked";
}

/** One tool call made with a credential, for the audit trail. */
export interface ToolCall {
  /** The tool, e.g. `psql`. */
  readonly tool: string;
  /** What it did, e.g. `read`. */
  readonly action: string;
  /** What it acted on (a table, a host, a path). */
  readonly target?: string;
  /** SHA-256 of the call's arguments: hex, optionally `sha256:`-prefixed (see `toolCallDigest`). */
  readonly digest?: string;
  /** The client the call came through, e.g. an MCP client's name from `initialize` (at most 128 characters). */
  readonly client?: string;
}

/** A resource this agent could check out, as `client.resources()` lists it. */
export interface CatalogResource {
  readonly name: string;
  /** The adapter's id: `postgres`, `mysql`, `redis`, `ldap`, ... */
  readonly adapter: string;
  /** What the resource is, as its DBA described it. */
  readonly description?: string;
  /** Its groups for policy. */
  readonly groups: readonly string[];
  /**
   * `proxy`: sessions go through the resource's listener on this sidecar (`withConnection`).
   * `credential`: the holder asks for the password (`withCredential`). A resource whose password
   * is never revealed is not listed when this sidecar runs no listener for it.
   */
  readonly session: "proxy" | "credential";
}

/** Options of the requests an agent makes with its identity and no lease. */
export interface AgentRequestOptions {
  /** The delegation this agent acts under, sent as the `act` claim of its identity assertion. */
  readonly act?: ActClaim;
  /** Gives up the request. */
  readonly signal?: AbortSignal;
}

/**
 * The revealed credential of a lease. `password` is not enumerable, so logging or serializing
 * the object does not print it.
 */
export interface Credential {
  readonly username: string;
  readonly password: string;
  /** The resource's connection settings (host, port, database, ...). */
  readonly connection: Readonly<Record<string, unknown>>;
  /** When the lease ends unless renewed; updated after each renewal. */
  readonly expiresAt: Date;
  /** Aborted when the lease is over: renewal refused, or its expiry passed. */
  readonly signal: AbortSignal;
  /** Records one tool call in the sidecar's audit log. */
  reportToolCall(call: ToolCall): Promise<void>;
}

/** An RFC 8693 `act` claim: who delegated the task to this agent, and who delegated to them. */
export interface ActClaim {
  /** A SPIFFE ID or a human principal `user:<e-mail>`. */
  readonly sub: string;
  /** Resource names the delegator allows (space-separated); scope can only narrow. */
  readonly scope?: string;
  readonly act?: ActClaim;
}

/**
 * How `createClient` reaches the sidecar. Absent fields come from the environment:
 * `LEASEHOLD_ADDR` (a URL, or `unix:/path`; `LEASEHOLD_URL` is an alias), `LEASEHOLD_SOCKET`
 * and `LEASEHOLD_AGENT_KEY`.
 */
export interface ClientOptions {
  /** Base URL of the sidecar over TCP, e.g. `http://127.0.0.1:7733`. Give this or `socketPath`. */
  readonly url?: string;
  /** The sidecar's Unix socket. Give this or `url`. */
  readonly socketPath?: string;
  /** The agent's private key file (`leasehold agent keygen`). */
  readonly keyFile?: string;
  /** The `aud` of identity assertions. @default "leasehold" */
  readonly audience?: string;
  /** Bind lease tokens to a per-client DPoP key (RFC 9449). @default true */
  readonly dpop?: boolean;
  /** Lifetime of each identity assertion, seconds. @default 60 */
  readonly assertionTtlSeconds?: number;
  /** Timeout of one request (a checkout adds its `wait`), ms. @default 30000 */
  readonly requestTimeoutMs?: number;
  /** How often a pending approval is polled, ms. @default 1000 */
  readonly approvalPollIntervalMs?: number;
}

export interface CheckoutRequest {
  readonly task: { readonly id: string; readonly description?: string };
  readonly intent: { readonly action: string; readonly tool?: string };
  /** Seconds; the resource's default when absent. Renewals ask for the same. */
  readonly ttl?: number;
  /** Seconds to wait for a free account. @default 0 */
  readonly wait?: number;
  /** The delegation this agent acts under, sent as the `act` claim of its identity assertion. */
  readonly act?: ActClaim;
  /** How long to wait for a human approval, ms. @default 900000 (15 min) */
  readonly approvalTimeoutMs?: number;
  /** Gives up the checkout (and a pending approval wait). */
  readonly signal?: AbortSignal;
  /**
   * Bind this lease's token to the client's DPoP key. A resource's listener accepts only an
   * unbound (Bearer) token, and the sidecar names its listener (`proxy`) only then.
   * @default the client's `dpop`
   */
  readonly dpop?: boolean;
  /** Called once when the checkout waits for a human approval, with the approval's id. */
  readonly onPending?: (approval: { readonly id: string; readonly status: string }) => void;
  /**
   * Called after each poll of a pending approval that is still undecided, with its current
   * status (`pending`): for progress reports while the checkout waits. `onPending` is called
   * first, once.
   */
  readonly onPoll?: (approval: { readonly id: string; readonly status: string }) => void;
}

/** Where a resource's local listener waits for the lease's holder (the checkout's `proxy` block). */
export interface ProxyEndpoint {
  readonly host: string;
  readonly port: number;
  /** The login name at the listener: the lease id. */
  readonly username: string;
}

/**
 * A login at a resource's listener: the lease id as user, the lease token as password. The
 * password is not enumerable, so logging or serializing the object does not print it.
 */
export interface ProxyConnection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** When the lease ends unless renewed; updated after each renewal. */
  readonly expiresAt: Date;
  /** Aborted when the lease is over: renewal refused, or its expiry passed. */
  readonly signal: AbortSignal;
}

/** A checked-out lease and what its holder can do with it. */
export interface LeaseHandle {
  /** The lease as last seen (updated after each renewal). */
  readonly lease: Lease;
  /** `DPoP` when the token is bound to this client's key, else `Bearer`. */
  readonly tokenType: "Bearer" | "DPoP";
  /** The resource's listener, when the sidecar named one (Bearer tokens only: see `dpop`). */
  readonly proxy?: ProxyEndpoint;
  /**
   * The login at the resource's listener: host and port, the lease id as user, the lease token
   * as password.
   * @throws LeaseholdClientError `no_proxy` when the checkout named no listener.
   */
  proxyLogin(): { host: string; port: number; user: string; password: string };
  /**
   * The lease token, for another process that uses or checks in the lease (a listener login, a
   * shell script). A DPoP-bound token is of no use without this client's key.
   */
  leaseToken(): string;
  /** Reveals the password (audited; policy decides). */
  credential(): Promise<{
    username: string;
    password: string;
    connection: Record<string, unknown>;
    expires_at: string;
  }>;
  /**
   * Reads the lease again (`GET /v1/leases/{id}` with the lease token) and updates `lease`.
   * @throws LeaseholdClientError `lease_expired` or `lease_revoked` once it has ended.
   */
  status(): Promise<Lease>;
  /** Extends the lease by `ttl` seconds (never past `max_expires_at`). */
  renew(ttl?: number): Promise<Lease>;
  reportToolCall(call: ToolCall): Promise<void>;
  /** Checks the lease in; the sidecar rotates the password. Resolves also when it had already ended. */
  checkin(): Promise<void>;
}

export interface LeaseholdClient {
  /**
   * Checks out `resource`, reveals its credential, runs `fn`, and always checks in, also when
   * `fn` throws. While `fn` runs the lease is renewed at about 2/3 of its TTL. A checkout that
   * needs a human approval waits for it (bounded by `approvalTimeoutMs`).
   * @returns what `fn` returns.
   * @throws LeaseholdClientError for refusals (`policy_denied`, `resource_busy`, `approval_denied`, ...),
   *   or whatever `fn` throws (after check-in).
   */
  withCredential<T>(
    resource: string,
    request: CheckoutRequest,
    fn: (cred: Credential, lease: Lease) => Promise<T>,
  ): Promise<T>;
  /**
   * Proxy mode: checks out with a Bearer token (DPoP off: listeners accept only Bearer), runs
   * `fn` with the login at the resource's listener (`{ host, port, user, password }`), renews
   * while `fn` runs and always checks in. The password is never revealed to this process.
   * @throws LeaseholdClientError `no_proxy` when the resource has no listener, refusals as
   *   `withCredential`, or whatever `fn` throws (after check-in).
   */
  withConnection<T>(
    resource: string,
    request: CheckoutRequest,
    fn: (conn: ProxyConnection, lease: Lease) => Promise<T>,
  ): Promise<T>;
  /** Checks out without revealing or renewing: the building block of `withCredential`. */
  checkout(resource: string, request: CheckoutRequest): Promise<LeaseHandle>;
  /**
   * Ends the task: checks in every lease this agent holds for `taskId` (each account's password is
   * rotated next); leases other agents hold for the same task id are left alone. This client's
   * handles of the leases ended show them ended, and their `checkin` resolves.
   * @returns the leases ended; an empty list when there were none.
   * @throws LeaseholdClientError for refusals (`invalid_request` for a bad task id, `unauthenticated`, ...)
   */
  completeTask(taskId: string, options?: CompleteTaskOptions): Promise<Lease[]>;
  /**
   * The resources this agent could check out (`GET /v1/catalog`): every registered resource
   * unless policy denies its checkout to this agent whatever the request would carry. Resources
   * that need a human approval are listed. A read: nothing is audited.
   */
  resources(options?: AgentRequestOptions): Promise<CatalogResource[]>;
  /**
   * Records one tool call made without a lease (`POST /v1/tool-calls`) in the audit trail, as
   * this agent's. A call made with a lease goes through its handle's `reportToolCall`.
   * @throws LeaseholdClientError `invalid_request` naming the field, `rate_limited`, ...
   */
  reportToolCall(call: ToolCall, options?: AgentRequestOptions): Promise<void>;
}

export interface CompleteTaskOptions {
  /** The delegation this agent acts under; it ends its own leases all the same. */
  readonly act?: ActClaim;
  /** Gives up the request. */
  readonly signal?: AbortSignal;
}
