import { createHash, randomBytes } from "node:crypto";
import { formatGoDuration } from "./go-format.js";

/** Vault's system default and maximum token TTL: 768h. */
export const SYSTEM_MAX_TTL = 768 * 3600;

/** A token, as the token store keeps it (times in epoch milliseconds, TTLs in seconds). */
export interface TokenEntry {
  id: string;
  accessor: string;
  policies: string[];
  meta: Record<string, string> | null;
  displayName: string;
  /** Uses left; 0 = unlimited. */
  numUses: number;
  /** Created with `num_uses` > 0: such tokens may not create children. */
  restricted: boolean;
  creationTime: number;
  creationTtl: number;
  /** `null`: no lease (root tokens, TTL 0). */
  expireTime: number | null;
  renewable: boolean;
  explicitMaxTtl: number;
  period: number;
  orphan: boolean;
  path: string;
  parent: string | null;
  entityId: string;
  lastRenewal: number | null;
}

/** The `auth` block of logins, token creation and renewal, in Go struct order. */
export interface AuthBlock {
  client_token: string;
  accessor: string;
  policies: string[];
  token_policies: string[];
  metadata: Record<string, string> | null;
  lease_duration: number;
  renewable: boolean;
  entity_id: string;
  token_type: "service";
  orphan: boolean;
  mfa_requirement: null;
  num_uses: number;
}

/** What a new token gets; the store fills in ids and times. */
export interface TokenSpec {
  id?: string;
  policies: string[];
  meta: Record<string, string> | null;
  displayName: string;
  numUses: number;
  ttl: number;
  renewable: boolean;
  explicitMaxTtl: number;
  period: number;
  orphan: boolean;
  path: string;
  parent: string | null;
  entityId: string;
}

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** Random base62 text (Vault's accessors are 24 such characters). */
export function randomBase62(length: number): string {
  const bytes = randomBytes(length * 2);
  let out = "";
  for (const byte of bytes) {
    if (byte >= 248) continue; // 248 = 4 * 62: keeps the distribution uniform
    out += BASE62[byte % 62];
    if (out.length === length) break;
  }
  return out.length === length ? out : out + randomBase62(length - out.length);
}

/** A stable UUID-shaped entity id for an auth method alias (Vault's identity store would persist one). */
export function entityIdFor(mount: string, alias: string): string {
  const hex = createHash("sha256").update(`${mount}\0${alias}`).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/**
 * Vault's `policyutil.SanitizePolicies`: trimmed, lower-cased, de-duplicated, sorted,
 * `default` added on request, and `["root"]` alone when root is among them.
 */
export function sanitizePolicies(policies: readonly string[], addDefault: boolean): string[] {
  const set = new Set(policies.map((p) => p.trim().toLowerCase()).filter((p) => p !== ""));
  if (set.has("root")) return ["root"];
  if (addDefault) set.add("default");
  return [...set].sort();
}

/** Tokens by id; expired tokens disappear on their next lookup. */
export class TokenStore {
  constructor(
    private readonly tokens: Record<string, TokenEntry>,
    private readonly onChange: () => void,
  ) {}

  /** Makes sure the configured root token exists (path `auth/token/root`, no TTL). */
  ensureRoot(id: string, now: number): void {
    const existing = this.tokens[id];
    if (existing?.policies.length === 1 && existing.policies[0] === "root" && existing.expireTime === null)
      return;
    this.create(
      {
        id,
        policies: ["root"],
        meta: null,
        displayName: "root",
        numUses: 0,
        ttl: 0,
        renewable: false,
        explicitMaxTtl: 0,
        period: 0,
        orphan: true,
        path: "auth/token/root",
        parent: null,
        entityId: "",
      },
      now,
    );
  }

  /** A live token, or `undefined` for unknown, revoked or expired ones. */
  lookup(id: string, now: number): TokenEntry | undefined {
    if (id === "") return undefined;
    const entry = this.tokens[id];
    if (!entry) return undefined;
    if (entry.expireTime !== null && entry.expireTime <= now) {
      this.revoke(id);
      return undefined;
    }
    return entry;
  }

  /** Like {@link lookup}, by accessor. */
  lookupByAccessor(accessor: string, now: number): TokenEntry | undefined {
    const entry = Object.values(this.tokens).find((t) => t.accessor === accessor);
    return entry ? this.lookup(entry.id, now) : undefined;
  }

  /** Stores a new token; `spec.ttl` 0 means no lease (no expiry). */
  create(spec: TokenSpec, now: number): TokenEntry {
    const entry: TokenEntry = {
      id: spec.id ?? `hvs.${randomBase62(24)}`,
      accessor: randomBase62(24),
      policies: spec.policies,
      meta: spec.meta,
      displayName: spec.displayName,
      numUses: spec.numUses,
      restricted: spec.numUses > 0,
      creationTime: now,
      creationTtl: spec.ttl,
      expireTime: spec.ttl > 0 ? now + spec.ttl * 1000 : null,
      renewable: spec.ttl > 0 && spec.renewable,
      explicitMaxTtl: spec.explicitMaxTtl,
      period: spec.period,
      orphan: spec.orphan,
      path: spec.path,
      parent: spec.parent,
      entityId: spec.entityId,
      lastRenewal: null,
    };
    this.tokens[entry.id] = entry;
    this.onChange();
    return entry;
  }

  /**
   * Counts one use of a limited-use token. Returns true when that was the last one:
   * the caller revokes the token once the request is done, as Vault does.
   */
  use(entry: TokenEntry): boolean {
    if (entry.numUses === 0) return false;
    entry.numUses -= 1;
    this.onChange();
    return entry.numUses === 0;
  }

  /** Revokes a token and, recursively, its non-orphan children. */
  revoke(id: string): void {
    if (!this.tokens[id]) return;
    delete this.tokens[id];
    for (const child of Object.values(this.tokens)) {
      if (child.parent === id) this.revoke(child.id);
    }
    this.onChange();
  }

  /**
   * Extends a token's lease to `increment` (or its period / creation TTL), capped at
   * its explicit max TTL or the system max counted from creation.
   */
  renew(
    entry: TokenEntry,
    increment: number,
    now: number,
  ): { ok: true; warnings: string[] } | { ok: false; error: string } {
    if (entry.expireTime === null) return { ok: false, error: "invalid lease ID" };
    if (!entry.renewable) return { ok: false, error: "lease is not renewable" };
    if (entry.expireTime <= now) return { ok: false, error: "lease expired" };
    const warnings: string[] = [];
    let ttl = entry.period > 0 ? entry.period : increment > 0 ? increment : entry.creationTtl;
    if (entry.period === 0) {
      const maxTtl =
        entry.explicitMaxTtl > 0 ? Math.min(entry.explicitMaxTtl, SYSTEM_MAX_TTL) : SYSTEM_MAX_TTL;
      const remaining = Math.max(0, Math.floor((entry.creationTime + maxTtl * 1000 - now) / 1000));
      if (ttl > remaining) {
        warnings.push(
          `TTL of "${formatGoDuration(ttl)}" exceeded the effective max_ttl of "${formatGoDuration(remaining)}"; TTL value is capped accordingly`,
        );
        ttl = remaining;
      }
    }
    entry.expireTime = now + ttl * 1000;
    entry.lastRenewal = now;
    this.onChange();
    return { ok: true, warnings };
  }

  /** Seconds left on the lease; 0 for tokens without one. */
  remainingTtl(entry: TokenEntry, now: number): number {
    return entry.expireTime === null ? 0 : Math.max(0, Math.round((entry.expireTime - now) / 1000));
  }

  /** The `auth` block for this token, `lease_duration` being its remaining TTL. */
  authBlock(entry: TokenEntry, now: number): AuthBlock {
    return {
      client_token: entry.id,
      accessor: entry.accessor,
      policies: [...entry.policies],
      token_policies: [...entry.policies],
      metadata: entry.meta,
      lease_duration: this.remainingTtl(entry, now),
      renewable: entry.renewable,
      entity_id: entry.entityId,
      token_type: "service",
      orphan: entry.orphan,
      mfa_requirement: null,
      num_uses: entry.numUses,
    };
  }

  /** The `data` of `auth/token/lookup*` (keys are sorted by the envelope writer). */
  lookupData(entry: TokenEntry, now: number): Record<string, unknown> {
    const data: Record<string, unknown> = {
      accessor: entry.accessor,
      creation_time: Math.floor(entry.creationTime / 1000),
      creation_ttl: entry.creationTtl,
      display_name: entry.displayName,
      entity_id: entry.entityId,
      expire_time: null,
      explicit_max_ttl: entry.explicitMaxTtl,
      id: entry.id,
      meta: entry.meta,
      num_uses: entry.numUses,
      orphan: entry.orphan,
      path: entry.path,
      policies: [...entry.policies],
      ttl: 0,
      type: "service",
    };
    if (entry.period > 0) data.period = entry.period;
    if (entry.expireTime !== null) {
      // Only tokens with a lease carry lease times (Vault's FetchLeaseTimesByToken).
      data.expire_time = new Date(entry.expireTime).toISOString();
      data.ttl = this.remainingTtl(entry, now);
      data.renewable = entry.renewable;
      data.issue_time = new Date(entry.creationTime).toISOString();
      if (entry.lastRenewal !== null) {
        data.last_renewal = new Date(entry.lastRenewal).toISOString();
        data.last_renewal_time = Math.floor(entry.lastRenewal / 1000);
      }
    }
    return data;
  }
}
