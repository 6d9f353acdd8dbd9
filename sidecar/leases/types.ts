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

export type CheckoutResult = { readonly ok: true; readonly lease: LeaseRecord } | { readonly ok: false };

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
