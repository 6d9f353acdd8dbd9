/** A lease as the watch view keeps it (from the snapshot or an event's `lease`). */
export interface WatchLease {
  readonly id: string;
  readonly resource: string;
  readonly account: string;
  readonly agent: string;
  readonly task: { readonly id: string };
  readonly intent: { readonly action: string };
  readonly state: string;
  /** ms since the epoch */
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/** An account that is not available (rotating or quarantined), shown beneath the leases. */
export interface WatchAccount {
  readonly resource: string;
  readonly account: string;
  readonly state: "rotating" | "quarantined";
  readonly note: string;
}

/** A stream event as the watch view reads it. */
export interface WatchEvent {
  readonly id: string;
  readonly time: string;
  readonly type: string;
  readonly resource: string;
  readonly account?: string;
  readonly lease_id?: string;
  readonly agent?: string;
  readonly reason?: string;
  readonly lease?: unknown;
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

/** Reads a lease view (JSON) into a WatchLease; null when it is not one. */
export function toWatchLease(v: unknown): WatchLease | null {
  if (v === null || typeof v !== "object") return null;
  const o = v as Record<string, unknown>;
  const issuedAt = Date.parse(str(o.issued_at));
  const expiresAt = Date.parse(str(o.expires_at));
  if (!str(o.id) || Number.isNaN(expiresAt)) return null;
  return {
    id: str(o.id),
    resource: str(o.resource),
    account: str(o.account),
    agent: str(o.agent),
    task: { id: str((o.task as Record<string, unknown> | undefined)?.id) },
    intent: { action: str((o.intent as Record<string, unknown> | undefined)?.action) },
    state: str(o.state),
    issuedAt: Number.isNaN(issuedAt) ? expiresAt : issuedAt,
    expiresAt,
  };
}

/**
 * The state the watch view draws: active leases and unavailable accounts, built from the
 * stream's snapshot and kept current by its events (applied idempotently).
 */
export class WatchState {
  readonly leases = new Map<string, WatchLease>();
  readonly accounts = new Map<string, WatchAccount>();
  /** Newest first. */
  readonly recent: WatchEvent[] = [];
  /** Server clock minus local clock, ms (countdowns use the server's clock). */
  offsetMs = 0;

  /** Replaces everything with a snapshot (JSON from `event: snapshot`). */
  applySnapshot(snap: unknown, localNow: number): void {
    const s = (snap ?? {}) as Record<string, unknown>;
    this.leases.clear();
    this.accounts.clear();
    this.recent.length = 0;
    const now = Date.parse(str(s.now));
    this.offsetMs = Number.isNaN(now) ? 0 : now - localNow;
    for (const raw of Array.isArray(s.leases) ? s.leases : []) {
      const l = toWatchLease(raw);
      if (l && l.state === "active") this.leases.set(l.id, l);
    }
    for (const r of Array.isArray(s.resources) ? s.resources : []) {
      const res = r as { name?: unknown; accounts?: unknown };
      for (const a of Array.isArray(res.accounts) ? res.accounts : []) {
        const acc = a as { name?: unknown; state?: unknown; failures?: unknown };
        const state = str(acc.state);
        if (state === "rotating" || state === "quarantined") {
          const failures =
            typeof acc.failures === "number" && acc.failures > 0 ? `${acc.failures} failures` : "";
          this.setAccount(str(res.name), str(acc.name), state, failures);
        }
      }
    }
    for (const e of Array.isArray(s.recent) ? s.recent : []) this.recent.push(e as WatchEvent);
  }

  private setAccount(resource: string, account: string, state: WatchAccount["state"], note: string): void {
    this.accounts.set(`${resource}/${account}`, { resource, account, state, note });
  }

  /** Applies one stream event. */
  applyEvent(e: WatchEvent): void {
    const lease = toWatchLease(e.lease);
    const key = `${e.resource}/${e.account ?? ""}`;
    switch (e.type) {
      case "issued":
      case "renewed":
      case "expiring_soon":
        if (lease?.state === "active") this.leases.set(lease.id, lease);
        else if (lease) this.leases.delete(lease.id);
        if (e.account) this.accounts.delete(key);
        break;
      case "ended":
        if (e.lease_id) this.leases.delete(e.lease_id);
        if (e.account) this.setAccount(e.resource, e.account, "rotating", `after ${e.reason ?? "end"}`);
        break;
      case "rotated":
        if (e.account) this.accounts.delete(key);
        break;
      case "rotation_failed":
        if (e.account && this.accounts.get(key)?.state !== "quarantined")
          this.setAccount(e.resource, e.account, "rotating", `failed: ${e.reason ?? "?"}`);
        break;
      case "quarantined":
        if (e.account) this.setAccount(e.resource, e.account, "quarantined", e.reason ?? "");
        break;
      default:
        break;
    }
    if (e.type === "rotated" || e.type === "rotation_failed" || e.type === "quarantined") {
      this.recent.unshift(e);
      this.recent.length = Math.min(this.recent.length, 25);
    }
  }
}

/** The active leases in the order the screen lists them: soonest expiry first, then by id. */
export function leasesInOrder(state: WatchState): WatchLease[] {
  return [...state.leases.values()].sort((a, b) => a.expiresAt - b.expiresAt || a.id.localeCompare(b.id));
}

/**
 * The lease the operator has selected, kept by id while rows come and go. When the selected
 * lease leaves the list, the selection falls to the row that took its place (or the last row).
 */
export class Selection {
  private id: string | undefined;
  private index = 0;

  /** The selected lease's id among `ids` (the rows in screen order); undefined when there are none. */
  resolve(ids: readonly string[]): string | undefined {
    if (ids.length === 0) {
      this.id = undefined;
      return undefined;
    }
    const at = this.id === undefined ? -1 : ids.indexOf(this.id);
    this.index = at >= 0 ? at : Math.min(this.index, ids.length - 1);
    this.id = ids[this.index];
    return this.id;
  }

  /** Moves the selection `delta` rows (negative: up), stopping at the first and last row. */
  move(ids: readonly string[], delta: number): string | undefined {
    if (this.resolve(ids) === undefined) return undefined;
    this.index = Math.min(ids.length - 1, Math.max(0, this.index + delta));
    this.id = ids[this.index];
    return this.id;
  }
}
