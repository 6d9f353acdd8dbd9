/** The lease store's scripts as ioredis commands, how it reads a lease hash, and its tunables. */
import type { RedisClient } from "../redis.js";
import type { LeaseMacFields } from "./lease-mac.js";
import {
  AGENT_COUNT,
  CHECKOUT,
  CLAIM_DUE,
  CLAIM_DUE_ALL,
  END,
  HIT,
  HIT_AND_COUNT,
  LIST_PAGE,
  OLDEST_ISSUED,
  RENEW,
  RESOURCE_STATS,
  SET_ACCOUNT,
  SPEND_HIT_AND_COUNT,
  USE,
} from "./scripts.js";
import type { EndReason, LeaseRecord, LeaseSpec } from "./types.js";

export interface ScriptCommands {
  lhCheckout(
    numKeys: number,
    ...keysAndArgs: (string | number)[]
  ): Promise<[number, number, string?, string[]?]>;
  lhUse(k1: string): Promise<[number, string[]]>;
  lhRenew(...keysAndArgs: (string | number)[]): Promise<number>;
  lhEnd(...keysAndArgs: (string | number)[]): Promise<[number, number]>;
  lhClaimDue(k1: string, k2: string, limit: number, visibilityMs: number): Promise<string[]>;
  lhClaimDueAll(k1: string, prefix: string, limit: number, visibilityMs: number): Promise<string[]>;
  lhSetAccount(
    k1: string,
    k2: string,
    k3: string,
    account: string,
    state: string,
    force: string,
  ): Promise<number>;
  lhAgentCount(k1: string, graceMs: number): Promise<number>;
  lhListPage(k1: string, ...args: (string | number)[]): Promise<[string[], ...[string, string, string[]][]]>;
  lhResourceStats(
    k1: string,
    k2: string,
    k3: string,
    k4: string,
    leasePrefix: string,
    scan: number,
  ): Promise<number[]>;
  lhOldestIssued(k1: string, leasePrefix: string, start: number, stop: number): Promise<number>;
  lhHit(k1: string, windowSeconds: number): Promise<[number, number]>;
  lhHitAndCount(
    k1: string,
    k2: string,
    windowSeconds: number,
    graceMs: number,
  ): Promise<[number, number, number]>;
  lhSpendHitAndCount(
    k1: string,
    k2: string,
    k3: string,
    windowSeconds: number,
    graceMs: number,
    spendTtlMs: number,
  ): Promise<[number, number?, number?, number?]>;
}
export type ScriptRedis = RedisClient & ScriptCommands;

export const SCRIPTS = {
  lhCheckout: { lua: CHECKOUT },
  lhUse: { numberOfKeys: 1, lua: USE },
  lhRenew: { numberOfKeys: 2, lua: RENEW },
  lhEnd: { numberOfKeys: 5, lua: END },
  lhClaimDue: { numberOfKeys: 2, lua: CLAIM_DUE },
  lhClaimDueAll: { numberOfKeys: 1, lua: CLAIM_DUE_ALL },
  lhSetAccount: { numberOfKeys: 3, lua: SET_ACCOUNT },
  lhAgentCount: { numberOfKeys: 1, lua: AGENT_COUNT },
  lhListPage: { numberOfKeys: 1, lua: LIST_PAGE },
  lhResourceStats: { numberOfKeys: 4, lua: RESOURCE_STATS },
  lhOldestIssued: { numberOfKeys: 1, lua: OLDEST_ISSUED },
  lhHit: { numberOfKeys: 1, lua: HIT },
  lhHitAndCount: { numberOfKeys: 2, lua: HIT_AND_COUNT },
  lhSpendHitAndCount: { numberOfKeys: 3, lua: SPEND_HIT_AND_COUNT },
} as const;

export function pairsToRecord(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}

export function toLease(h: Record<string, string>): LeaseRecord | null {
  if (!h.json) return null;
  const spec: unknown = JSON.parse(h.json);
  // The record's fields are set on the freshly parsed spec, not spread into a copy of it: V8 takes
  // some 20 µs to spread a parsed object and add these to the copy, on every token use (issue 19).
  // A spec that is no object (only a forged record's) is copied first, as a spread would.
  const base =
    typeof spec === "object" && spec !== null && !Array.isArray(spec) ? spec : Object.assign({}, spec);
  const fields: Omit<LeaseRecord, keyof LeaseSpec> = {
    account: h.account ?? "",
    state: h.state === "active" ? "active" : "ended",
    issued_at: Number(h.issued_at),
    expires_at: Number(h.expires_at),
    max_expires_at: Number(h.max_expires_at),
    ended_at: h.ended_at === undefined ? undefined : Number(h.ended_at),
    end_reason: h.end_reason as EndReason | undefined,
  };
  return Object.assign(base as LeaseSpec, fields);
}

/** The MAC's inputs as a record read from `resource`/`id`'s key shows them. */
export function macFields(resource: string, id: string, l: LeaseRecord, spec: string): LeaseMacFields {
  return {
    id,
    resource,
    agent: l.agent,
    account: l.account,
    state: l.state,
    expires_at: l.expires_at,
    max_expires_at: l.max_expires_at,
    spec,
  };
}

/** Scheduled leases one stats script reads; a resource with more is read in further scripts of this many. */
export const STATS_SCAN = 2000;

/** Attempts at a renew or end whose record changed between its read and its script. */
export const CAS_ATTEMPTS = 3;

/** How long after max_expires_at a lease may still be waiting for the reaper before its index entry is dropped. */
export const STALE_GRACE_MS = 10 * 60 * 1000;

/** A waiter that has not called checkout again within this time leaves the queue. */
export const WAITER_TTL_MS = 2000;

/**
 * How much earlier than now + ttl (by Redis' clock) the expiries the store signs may fall: the
 * store estimates Redis' clock from its last reply, so a lease may be this much shorter than asked.
 */
export const CHECKOUT_SKEW_MS = 2000;

/**
 * Checkout script calls a checkout may lose before it answers busy. A call loses only when the
 * clock estimate was off by more than CHECKOUT_SKEW_MS or the reservation it named was lost (a
 * stall past RESERVATION_MS, an operator changing the account); one that finds a candidate free or
 * reserves an account does not (uncontended: one call; contended: two).
 */
export const CHECKOUT_ATTEMPTS = 5;

/** Accounts a checkout signs for in advance (the first free ones the last reply listed). */
export const CANDIDATES = 4;
