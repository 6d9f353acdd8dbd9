import type { Cluster, Redis } from "ioredis";
import type { TemplatedFields } from "./record-template.js";

/**
 * Every kind of audit record, with the `scope` values each may carry and what it means: the one
 * table from which `AuditEvent`, `AuditScope`, the record schema's enums (and so
 * audit-record.schema.json) and the event table of docs/audit.md are derived. A new kind or scope
 * is one entry here; an `append` with anything else does not compile.
 */
export const AUDIT_EVENTS = {
  decision: {
    scopes: [
      "checkout",
      "reveal",
      "renew",
      "tool_call",
      "revoke",
      "approve",
      "register",
      "statement",
      "approval_requested",
      "approved",
      "denied",
      "dpop",
      "proxy_statement",
      "lease_integrity",
      "token_exchange",
      "caller_pin",
      "proxy_limit",
    ],
    about:
      "a policy decision; `scope` is the action decided (an agent's `checkout`, `reveal`, `renew`, `tool_call`; an operator's `revoke`, `approve`, `register`; a statement a protocol listener refused by policy, `statement`: `digest` the statement's SHA-256, `policies` the deciding ones, `reason` its kind and tables, never its text), a human's `approved` / `denied`, a new approval (`approval_requested`), a refused DPoP proof (`dpop`), a statement the protocol proxy refused (`proxy_statement`: a password change where the resource does not reveal its password; on an LDAP listener also a second bind, StartTLS after the bind, or any password change), a lease token refused because its lease record in Redis failed its MAC (`lease_integrity`: tampered), a delegation token issued by the token exchange (`token_exchange`: `agent` the actor, `agent_chain` the delegator and whoever it acts for, `reason` the scope), or an identity refused because its key is pinned to other local callers (`caller_pin`: `allowedCallers` in the trust bundle; `caller` the presented caller), or a proxied session ended because its lease passed a cap of the resource's `proxy.limits` (`proxy_limit`: `reason` names the setting)",
  },
  checkout: { scopes: ["checkout"], about: "a lease was issued" },
  reveal: { scopes: ["reveal"], about: "the lease's credential was handed to its holder" },
  renew: { scopes: ["renew"], about: "a lease was renewed" },
  tool_call: {
    scopes: ["tool_call", "proxy_connect", "proxy_session", "proxy_statement"],
    about:
      "a tool call the agent reported (`tool_call`: with the lease's fields, or without a lease through `POST /v1/tool-calls`; `client` the MCP client it came through), or the protocol proxy's connection (`proxy_connect`), session (`proxy_session`) and statement (`proxy_statement`) records",
  },
  checkin: { scopes: [], about: "the holder checked the lease in" },
  expiry: { scopes: [], about: "the lease expired" },
  revocation: {
    scopes: [],
    about: "the lease was revoked (by an operator, or when its token could not be minted); `reason` says why",
  },
  caller_mismatch: {
    scopes: ["uid", "cgroup", "process", "exe", "unattested", "host"],
    about:
      "a lease bound to the local caller that checked it out (`identity.bindCaller`) was used by another: `scope` the first part that differed (`unattested`: the caller could not be attested; `host`: another host of the cluster, or this one after a restart), `caller` the presented caller, `bound_caller` the one at checkout, `reason` what was done (refused, or the lease revoked: `identity.onCallerMismatch`)",
  },
  task_teardown: {
    scopes: ["complete", "revoke"],
    about:
      "every lease of one task ended at once: the agent completed its task (`complete`: its own leases of it, checked in) or an operator revoked the task (`revoke`: every agent's leases of it, `agent` the operator); `task_id` the task, `lease_count` how many leases it ended (each has its own `checkin` or `revocation` record)",
  },
  rotation_started: {
    scopes: ["admin"],
    about:
      "a rotation of the account began (`scope: admin`: of the resource's admin password; `account` is the admin)",
  },
  rotation_succeeded: {
    scopes: ["admin"],
    about: "the account's new password is in force (`scope: admin`: the resource's admin password)",
  },
  rotation_failed: {
    scopes: ["admin"],
    about:
      "a rotation attempt failed; `reason` is the error (`scope: admin`: of the resource's admin password)",
  },
  quarantine: { scopes: [], about: "rotation kept failing: the account is never handed out" },
  registration: { scopes: [], about: "a resource was registered, updated or removed (`reason`)" },
  cluster: {
    scopes: ["cluster_adopt", "cluster_mismatch"],
    about:
      "the cluster identity: an operator adopted this Redis keyspace into the cluster after a loss of Redis data (`cluster_adopt`; `reason` names the keyspace, the id and what it held), or a sidecar found its Redis and Vault do not form one cluster (`cluster_mismatch`; `reason` names both)",
  },
  policy_reload: { scopes: ["policy"], about: "the policy was reloaded, or a reload refused (`reason`)" },
  admin: {
    scopes: ["audit_query", "audit_recovered", "audit_reopened", "audit_foreign_write", "audit_dropped"],
    about:
      "the audit trail about itself: a query over HTTP (`audit_query`), writes failed for a while or a torn record was dropped (`audit_recovered`), the file was moved or removed in use (`audit_reopened`), something else wrote to the file (`audit_foreign_write`), statement records were dropped because the queue of records waiting to be written was full (`audit_dropped`: `dropped` how many)",
  },
} as const satisfies Record<string, { readonly scopes: readonly string[]; readonly about: string }>;

export type AuditEvent = keyof typeof AUDIT_EVENTS;

/** The `scope` values a record of event `E` may carry (never, for an event without scopes). */
export type AuditScopeOf<E extends AuditEvent> = (typeof AUDIT_EVENTS)[E]["scopes"][number];

/** Every `scope` value of any event. */
export type AuditScope = AuditScopeOf<AuditEvent>;

export const AUDIT_DECISIONS = ["allow", "deny", "approval_required"] as const;

export type AuditDecision = (typeof AUDIT_DECISIONS)[number];

/**
 * One audit record; fields are kept apart, never folded into a message. Never a secret.
 * `AuditFields<"decision">` admits only the decision's scopes; plain `AuditFields` any known
 * event with any known scope.
 */
export type AuditFields<E extends AuditEvent = AuditEvent> = AuditKind<E> & AuditDetails;

/** What kind of record: the event, and the scope that event admits. */
export interface AuditKind<E extends AuditEvent> {
  readonly event: E;
  /** What the record covers: the policy action decided, or the sub-kind of the event. */
  readonly scope?: AuditScopeOf<E> | undefined;
}

/** The fields every kind of record may carry. */
export interface AuditDetails {
  /** Who acted: the agent's SPIFFE ID (or the operator for admin actions). */
  readonly agent?: string | undefined;
  /** Delegators (agents or `user:<e-mail>`), nearest first; an empty list means the agent acted for itself. */
  readonly agent_chain?: readonly string[] | undefined;
  /** The human who approved the checkout behind this record. */
  readonly approver?: string | undefined;
  readonly task_id?: string | undefined;
  readonly intent?: string | undefined;
  readonly tool?: string | undefined;
  readonly resource?: string | undefined;
  readonly account?: string | undefined;
  readonly lease_id?: string | undefined;
  readonly decision?: AuditDecision | undefined;
  /** Ids of the policies that decided. */
  readonly policies?: readonly string[] | undefined;
  /** Free text: a denial's reason, a revocation reason, an error message. */
  readonly reason?: string | undefined;
  /** The approval a decision is about (scopes approval_requested, approved, denied). */
  readonly approval_id?: string | undefined;
  /** How the acting identity was verified: `agents` (its key in the operator's bundle) or `issuer`. */
  readonly trust_kind?: "agents" | "issuer" | undefined;
  readonly request_id?: string | undefined;
  /** What a tool call acted on (table, host, path), as the agent reported it. */
  readonly target?: string | undefined;
  /** SHA-256 of the tool call's arguments, as the agent reported it. */
  readonly digest?: string | undefined;
  /** The client the tool call came through (an MCP client's name from `initialize`), as the agent reported it. */
  readonly client?: string | undefined;
  /** How many leases a task teardown ended. */
  readonly lease_count?: number | undefined;
  /** Proxy sessions: bytes from the client, to the client, and how long the session lasted. */
  readonly bytes_in?: number | undefined;
  readonly bytes_out?: number | undefined;
  readonly duration_ms?: number | undefined;
  /** Proxy sessions: the database the session opened, or was refused (PostgreSQL). */
  readonly database?: string | undefined;
  /** The local caller that made the request, as attested (a `caller_mismatch` record). */
  readonly caller?: AuditCaller | undefined;
  /** The local caller a lease is bound to, as attested at checkout (a `caller_mismatch` record). */
  readonly bound_caller?: AuditCaller | undefined;
  /** Proxy statement audit: the statement text (auditStatements: "text") and whether it was cut. */
  readonly statement?: string | undefined;
  readonly truncated?: boolean | undefined;
  /** How many statement records were dropped, unwritten, before this one (an `audit_dropped` record). */
  readonly dropped?: number | undefined;
}

/** A local caller as an audit record shows it: who, never a path or a secret. */
export interface AuditCaller {
  readonly attested: boolean;
  readonly uid?: number | undefined;
  readonly pid?: number | undefined;
  readonly start_time?: string | undefined;
  readonly exe_sha256?: string | undefined;
  readonly cgroup?: string | undefined;
}

export type AuditRecord = AuditFields & AuditSeal;

/** What the log adds to the fields when it writes a record. */
export interface AuditSeal {
  /** When the event was appended, RFC 3339 UTC with milliseconds. */
  readonly time: string;
  /** The instance that wrote the record. */
  readonly sidecar: string;
  /** Position in this chain, from 0, without gaps. */
  readonly seq: number;
  /** SHA-256 (hex) of the previous record's canonical JSON; 64 zeros for the first. */
  readonly prev: string;
  /** SHA-256 (hex) of this record's canonical JSON without `hash` and `hmac`. */
  readonly hash: string;
  /** HMAC-SHA256 (hex) of `hash` under the audit key, when one is configured. */
  readonly hmac?: string | undefined;
}

export interface AppendOptions {
  /**
   * Write the record with the next one appended (one flush for both) instead of at once; it is
   * written after `AuditLogOptions.lingerMs` at the latest. For a decision whose action is about
   * to be recorded too: the promise still resolves only once the record is on disk.
   */
  readonly withNext?: boolean | undefined;
}

/** What became of a deferred record: queued for the next batch, dropped (the queue is full), refused (closed). */
export type AppendOutcome = "queued" | "dropped" | "refused";

export interface AuditSink {
  /**
   * Appends a record and resolves once it is on disk (DESIGN.md I6: decisions and the actions
   * they allow). The event picks the scopes the compiler admits (see `AUDIT_EVENTS`).
   */
  append<E extends AuditEvent>(fields: AuditFields<E>, options?: AppendOptions): Promise<void>;
  /**
   * Queues a record nobody waits for (a listener's statement record), written with the next
   * batch; `done` is told once it is on disk (no argument) or refused (the error), never when
   * the record was not queued. A sink without it is given `append` (awaited records). `fields`
   * may be a template with the record's own values (a session's statement records share the rest).
   */
  appendDeferred?<E extends AuditEvent>(
    fields: AuditFields<E> | TemplatedFields,
    done?: (err?: Error) => void,
  ): AppendOutcome;
  /** Writes the records appended `withNext` now, without waiting for a next one. */
  flush?(): void;
  /** False after a write failed: the sidecar then refuses checkouts (fail closed). */
  healthy(): boolean;
}

/** Where the audit log copies each record for live readers (a Redis stream). */
export interface AuditMirrorTarget {
  readonly redis: Redis | Cluster;
  /** The stream key, e.g. `${prefix}audit`. */
  readonly key: string;
  /** Approximate cap on the stream's length (XADD MAXLEN ~). @default 100000 */
  readonly maxLen?: number | undefined;
  /**
   * Whether a protocol listener's statement records (`tool_call` / `proxy_statement`) go to the
   * stream too. Off by default: one XADD per statement is the main cost of statement audit, at
   * thousands of statements a second they push every lease record out of the capped stream within
   * seconds, and their text would sit in Redis. The file always has them. @default false
   */
  readonly statements?: boolean | undefined;
  /** How long closing the log waits for records still on their way to the stream, ms. @default 2000 */
  readonly drainTimeoutMs?: number | undefined;
}

/** Where a background failure of the audit log happened. */
export type AuditErrorPlace = "write" | "mirror" | "hook";

export interface AuditLogOptions {
  /** The longest a record appended `withNext` waits for the next record, ms. @default 25 */
  readonly lingerMs?: number | undefined;
  /** The longest a deferred record (appendDeferred) waits for its batch to be written, ms. @default 25 */
  readonly batchDelayMs?: number | undefined;
  /** Deferred records that make a batch full (written at once). @default 1000 */
  readonly maxBatch?: number | undefined;
  /** Deferred records waiting at most; more are dropped and counted (`audit_dropped`). @default 50000 */
  readonly maxQueued?: number | undefined;
  /** Rough bytes of deferred records waiting at most (statement text + 512 each). @default 64 MiB */
  readonly maxQueuedBytes?: number | undefined;
  /** Rotate the file before a write would take it past this size; 0: never. @default 0 */
  readonly maxBytes?: number | undefined;
  /** Key for the `hmac` field of every record (at least 32 bytes). */
  readonly hmacKey?: Uint8Array | undefined;
  /** Copy every written record to a Redis stream; its failures never block the file. */
  readonly mirror?: AuditMirrorTarget | undefined;
  /**
   * How often the log checks that its path still names the file it writes, and retries after a
   * failure, ms; 0 disables the check. @default 1000
   */
  readonly watchIntervalMs?: number | undefined;
  /**
   * Told when writes start failing ("write"; the appends themselves reject), and about failures
   * nobody awaits: the stream mirror ("mirror") and the onRecord hook ("hook").
   */
  readonly onError?: ((err: Error, where: AuditErrorPlace) => void) | undefined;
  /** Clock for the `time` field, ms since the epoch. @default Date.now */
  readonly now?: (() => number) | undefined;
}
