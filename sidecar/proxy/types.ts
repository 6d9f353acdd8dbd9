import type { RedisClient } from "../redis.js";
import type { CallerAttestation, CallerAttestor } from "../attest/index.js";
import type { AuditSink } from "../audit/index.js";
import type { LeaseEvent } from "../events/index.js";
import type { LeaseRecord, ScramVerifier, TokenProof } from "../leases/index.js";
import type { Logger } from "../logger.js";
import type { StatementPolicyPort, UnparseablePolicy } from "./statement-policy.js";

/** What the listeners record of each PostgreSQL or MySQL statement: nothing, its SHA-256, or its text too. */
export type AuditStatements = "none" | "digest" | "text";

/** The wire protocols a listener can speak. */
export type ProxyProtocol = "postgres" | "mysql" | "redis" | "ldap";

/** The credential of a leased account, as the lease service hands it to a listener. */
export interface ProxyCredential {
  readonly lease: LeaseRecord;
  readonly username: string;
  readonly password: string;
}

/** What a listener tells the lease service of the connection presenting a lease token. */
export interface ProxyRequestMeta {
  readonly requestId: string;
  /** The client's address and port. */
  readonly client?: string;
  /** The local process at the other end of the client connection, attested when first asked for. */
  readonly caller?: (() => Promise<CallerAttestation>) | undefined;
}

/**
 * What the listeners need from the lease service; `LeaseService` satisfies it. `events` emits
 * `"ended"` with the LeaseRecord when this sidecar ends a lease.
 */
export interface ProxyLeasePort {
  /** Checks the token as the HTTP API does and that the lease is for `resource`; throws LeaseholdError otherwise. */
  proxyCredential(
    token: string | TokenProof,
    leaseId: string,
    resource: string,
    meta: ProxyRequestMeta,
  ): Promise<ProxyCredential>;
  /** The SCRAM verifier of the lease's token stored at checkout, if any and intact. */
  tokenVerifier(leaseId: string, resource: string): Promise<ScramVerifier | undefined>;
}

/** TLS offered to clients that ask for it: a self-signed certificate made at start, given PEMs, or none. */
export type ProxyTls = "self-signed" | false | { readonly key: string; readonly cert: string };

export interface ProxyManagerOptions {
  leases: ProxyLeasePort;
  /** This sidecar's lease events: an ended lease closes its sessions at once (others' arrive by the stream). */
  events: { subscribe(listener: (event: LeaseEvent) => void): () => void };
  /** The sidecar's Redis; the manager duplicates it for its own blocking stream reader. */
  redis: RedisClient;
  /** Redis key prefix of the cluster; lease events are read from `${prefix}events`. */
  prefix: string;
  audit: AuditSink;
  log: Logger;
  /** Per-statement audit records for PostgreSQL and MySQL. @default "none" */
  auditStatements?: AuditStatements;
  /** Time a client has from connecting to a spliced session (including the backend login), ms. @default 5000 */
  handshakeTimeoutMs?: number;
  /**
   * Connections of one listener still logging in; past it the oldest one waiting on its client
   * is closed to make room. @default 64
   */
  maxHandshakes?: number;
  /** Authenticated connections one lease may hold at once (53300 / ERR beyond). @default 16 */
  maxConnectionsPerLease?: number;
  /** Largest message accepted before the session is spliced, bytes. @default 1048576 */
  maxMessageBytes?: number;
  /** TLS for clients that ask for it (PostgreSQL SSLRequest, MySQL CLIENT_SSL, LDAP StartTLS or ldaps). @default "self-signed" */
  tls?: ProxyTls;
  /** Adapter ids whose resources get a listener, and the protocol it speaks. @default { postgres: "postgres", mysql: "mysql", "redis-acl": "redis", ldap: "ldap" } */
  protocols?: Readonly<Record<string, ProxyProtocol>>;
  /** Attests the process at the other end of each client connection; without it logins carry no caller. */
  attestor?: CallerAttestor;
  /** Decides statements of resources with `proxy.statementPolicy`; absent: such statements are all refused. */
  policy?: StatementPolicyPort;
  /** A statement the grammar cannot parse, under statement policy. @default "deny" */
  unparseable?: UnparseablePolicy;
}

/** Where agents connect for one resource. */
export interface ProxyEndpoint {
  readonly host: string;
  readonly port: number;
  readonly protocol: ProxyProtocol;
}

/** What one `sync()` changed; a listener that could not start is reported, not thrown. */
export interface ProxySyncReport {
  readonly started: readonly string[];
  readonly stopped: readonly string[];
  readonly failed: ReadonlyArray<{ readonly resource: string; readonly error: string }>;
}

/** One proxied client connection, as the manager sees it. */
export interface ProxySession {
  /** Ends the session at once; `why` is told to the client where the protocol allows. */
  terminate(why: string): void;
  /**
   * Its lease ended (`why`): a session still logging in is refused as a wrong token would be
   * (the lease no longer opens anything), a logged-in one is ended as by `terminate`.
   */
  leaseEnded(why: string): void;
}
