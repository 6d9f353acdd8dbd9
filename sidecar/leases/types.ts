export type LeaseState = "active" | "ended";
export type EndReason = "checkin" | "expired" | "revoked";
export type AccountState = "available" | "leased" | "rotating" | "quarantined";

export interface LeaseTask {
  readonly id: string;
  readonly description?: string | undefined;
}

export interface LeaseIntent {
  readonly action: string;
  readonly tool?: string | undefined;
}

/**
 * The local process that checked the lease out (issue 22), as the sidecar attested it then.
 * Part of the lease's spec, so the lease MAC covers it: whoever can write Redis cannot rebind a
 * lease to another process. `attested: false`: the checkout came from a caller that could not be
 * resolved (no socket, an unreadable `/proc` entry); such a lease is bound to no caller.
 */
export type LeaseCaller =
  | {
      readonly attested: true;
      readonly uid: number;
      readonly gid: number;
      readonly pid: number;
      /** `/proc/<pid>/stat` field 22: with the pid, names one process even after pid reuse. */
      readonly start_time: string;
      readonly exe_sha256: string;
      readonly cgroup: string;
      readonly container_id?: string | undefined;
      /** The host's boot id at checkout: the lease is used on this host, in this boot, only. */
      readonly boot_id?: string | undefined;
    }
  | { readonly attested: false };

/** The parts of a lease fixed at checkout. */
export interface LeaseSpec {
  readonly id: string;
  readonly resource: string;
  readonly agent: string;
  readonly task: LeaseTask;
  readonly intent: LeaseIntent;
  readonly approver?: string | undefined;
  readonly agent_chain?: readonly string[] | undefined;
  /** The agent's policy attributes at checkout (identity claims the policy schema declares). */
  readonly attrs?: Record<string, unknown> | undefined;
  /** Who checked the lease out; absent on leases issued before callers were recorded (never bound). */
  readonly caller?: LeaseCaller | undefined;
}

/** A lease as stored; times are milliseconds since the epoch, from Redis' clock. */
export interface LeaseRecord extends LeaseSpec {
  readonly account: string;
  readonly state: LeaseState;
  readonly issued_at: number;
  readonly expires_at: number;
  readonly max_expires_at: number;
  readonly ended_at?: number | undefined;
  readonly end_reason?: EndReason | undefined;
}

/** Where a lease lives: its resource and id. */
export interface LeaseRef {
  readonly resource: string;
  readonly id: string;
}

export interface AccountStatus {
  readonly name: string;
  readonly state: AccountState;
  readonly lease_id?: string | undefined;
}

export type CheckoutResult =
  | {
      readonly ok: true;
      readonly lease: LeaseRecord;
      /** The checkout script appended the `issued` entry to the lease event stream itself. */
      readonly announced: boolean;
    }
  | { readonly ok: false };

export type EndResult =
  | { readonly ended: true; readonly lease: LeaseRecord }
  | { readonly ended: false; readonly lease: LeaseRecord | null };

export type RenewResult =
  | { readonly ok: true; readonly lease: LeaseRecord }
  | { readonly ok: false; readonly lease: LeaseRecord | null };

/** A lease as read on token use, with Redis' clock at that instant. */
export interface LeaseUse {
  readonly lease: LeaseRecord | null;
  readonly now: number;
  /** The record's MAC holds: false means it was written by someone without the key. */
  readonly intact: boolean;
}

/** One resource's lease and account counts, as the metrics read them. */
export interface ResourceStats {
  /** Active leases (scheduled or claimed by a reaper). */
  readonly active: number;
  /** The soonest expires_at of an active lease, ms; absent without one. */
  readonly soonest_expires_at?: number | undefined;
  /** The earliest issued_at of an active lease, ms; absent without one. */
  readonly oldest_issued_at?: number | undefined;
  /**
   * Managed accounts by state, each counted once: `available` ones are free for a checkout now;
   * `reserved` ones are available accounts a checkout in progress holds for its lease id (at most
   * RESERVATION_MS, then the lease takes them or they are free again), not counted as available.
   */
  readonly accounts: Readonly<Record<AccountState | "reserved", number>>;
}

/**
 * Where a listing of leases stands: resource, phase ('i' claimed by a reaper, 'd' scheduled,
 * 'z' past the resource), expires_at (scheduled) and lease id of the last entry looked at.
 */
export type LeasePosition = readonly [resource: string, phase: string, score: string, id: string];

/** One page of active leases; `next` is absent on the last page. */
export interface LeasePage {
  readonly leases: LeaseRecord[];
  readonly next?: LeasePosition | undefined;
}

/**
 * A one-time key to spend in the same round trip as a rate count (an identity token's `jti`):
 * `SET key 1 PX ttlMs NX`; when the key exists the request is a replay and nothing is counted.
 */
export interface OneTimeSpend {
  readonly key: string;
  readonly ttlMs: number;
}
