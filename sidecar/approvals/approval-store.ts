import { randomBytes } from "node:crypto";
import type { RedisClient } from "../redis.js";

export type ApprovalStatus = "pending" | "approved" | "denied" | "expired";

/** A checkout that policy allows only with a human's approval. */
export interface Approval {
  readonly id: string;
  readonly status: ApprovalStatus;
  readonly agent: string;
  /** The requester's delegators, nearest first: none of them may approve it either. */
  readonly agent_chain?: readonly string[] | undefined;
  readonly resource: string;
  readonly task: { readonly id: string; readonly description?: string | undefined };
  readonly intent: { readonly action: string; readonly tool?: string | undefined };
  readonly ttl: number;
  readonly policies: readonly string[];
  /**
   * The thumbprint of the DPoP key the checkout proved (RFC 9449): every poll must prove the same
   * key and the lease token is bound to it. Absent: the checkout had no proof (a Bearer token).
   */
  readonly jkt?: string | undefined;
  readonly requested_at: string;
  readonly expires_at: string;
  readonly decided_at?: string | undefined;
  /** Who approved it (the distinct approvers, comma separated), or who denied it. */
  readonly approver?: string | undefined;
  /** The distinct approvers so far, in the order they approved. */
  readonly approvers?: readonly string[] | undefined;
  readonly reason?: string | undefined;
  readonly lease_id?: string | undefined;
}

/** An approval as a list sees it before reading it whole: enough to filter, count and page. */
export interface ApprovalRow {
  readonly id: string;
  /** Request time, ms since the epoch (the index's score). */
  readonly at: number;
  readonly status: ApprovalStatus;
  readonly resource: string;
}

/** The result of opening an approval: refused when the agent has too many pending already. */
export type CreateResult =
  | { readonly ok: true; readonly approval: Approval }
  | { readonly ok: false; readonly pending: number; readonly retryAfterSeconds: number };

/** One approver's answer to a pending approval. */
export interface Vote {
  readonly approver: string;
  readonly approve: boolean;
  readonly reason?: string | undefined;
}

/** What became of a vote. `recorded`: the approval as it now is (still pending while approvers are missing). */
export type VoteResult =
  | { readonly kind: "recorded"; readonly approval: Approval }
  | { readonly kind: "not_found" }
  | { readonly kind: "not_pending"; readonly approval: Approval }
  | { readonly kind: "already_voted"; readonly approval: Approval }
  | { readonly kind: "changed" };

/**
 * KEYS: approval. ARGV: from-status, to-status, json, expected revision ("" for any). Changes the
 * approval only from the expected status (and revision), and counts the revision up.
 */
const TRANSITION = `local st = redis.call('HGET', KEYS[1], 'status')
if st ~= ARGV[1] then return 0 end
if ARGV[4] ~= '' and (redis.call('HGET', KEYS[1], 'rev') or '0') ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'json', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'rev', 1)
return 1`;

/**
 * KEYS: the agent's pending set. ARGV: now ms, cap, expiry ms, approval id, key ttl ms.
 * Forgets expired entries, then adds the new one unless the agent is at its cap. Returns
 * {1, count} or {0, count, soonest expiry ms}.
 */
const RESERVE = `redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[2]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, n, first[2]}
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, n + 1}`;

const DAY_MS = 24 * 3600 * 1000;

export interface ApprovalStoreOptions {
  /** The wall clock (ms since the epoch) that request and expiry times are read from. @default Date.now */
  readonly now?: (() => number) | undefined;
  /** Distinct approvers an approval needs before it is approved. @default 1 */
  readonly minApprovers?: number | undefined;
  /** Pending approvals one agent may have open at once. @default 5 */
  readonly maxPendingPerAgent?: number | undefined;
}

/** The status a list or a poll shows: a pending approval past its expiry is expired. */
function effectiveStatus(status: string, expiresAt: number, now: number): ApprovalStatus {
  if (status === "redeeming") return "approved";
  if (status === "pending" && expiresAt <= now) return "expired";
  return status as ApprovalStatus;
}

const normalName = (s: string) => s.normalize("NFKC").trim().toLowerCase();

/**
 * Pending approvals and their outcome, in Redis (shared by every sidecar of the cluster). An
 * approval is read and decided by its id, never through a list; each agent has a cap on the
 * approvals it has pending; an approval turns approved only with `minApprovers` distinct votes.
 */
export class ApprovalStore {
  private readonly now: () => number;
  /** Distinct approvers an approval needs. */
  readonly minApprovers: number;
  /** Pending approvals one agent may have at once. */
  readonly maxPendingPerAgent: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    options: ApprovalStoreOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.minApprovers = options.minApprovers ?? 1;
    this.maxPendingPerAgent = options.maxPendingPerAgent ?? 5;
  }

  private key(id: string): string {
    return `${this.prefix}approval:${id}`;
  }

  private get index(): string {
    return `${this.prefix}approvals`;
  }

  private pendingKey(agent: string): string {
    return `${this.prefix}approvals:pending:${agent}`;
  }

  /**
   * Opens a pending approval, unless its agent already has `maxPendingPerAgent` pending (then
   * nothing is written and the answer says when the soonest of them expires).
   */
  async create(
    input: Omit<Approval, "id" | "status" | "requested_at" | "expires_at" | "approvers">,
    ttlSeconds: number,
  ): Promise<CreateResult> {
    const now = this.now();
    const expires = now + ttlSeconds * 1000;
    const id = `apr_${randomBytes(12).toString("base64url")}`;
    const reserved = (await this.redis.eval(
      RESERVE,
      1,
      this.pendingKey(input.agent),
      now,
      this.maxPendingPerAgent,
      expires,
      id,
      ttlSeconds * 1000 + 60_000,
    )) as [number, number, string?];
    if (reserved[0] !== 1) {
      const soonest = Number(reserved[2] ?? expires);
      return {
        ok: false,
        pending: reserved[1],
        retryAfterSeconds: Math.max(1, Math.ceil((soonest - now) / 1000)),
      };
    }
    const a: Approval = {
      ...input,
      id,
      status: "pending",
      requested_at: new Date(now).toISOString(),
      expires_at: new Date(expires).toISOString(),
    };
    // Separate commands: the approval and the index may live in different cluster slots.
    await this.redis.hset(this.key(a.id), {
      status: a.status,
      json: JSON.stringify(a),
      rev: 0,
      expires,
      resource: a.resource,
    });
    await this.redis.pexpire(this.key(a.id), ttlSeconds * 1000 + DAY_MS);
    await this.redis.zadd(this.index, now, a.id);
    return { ok: true, approval: a };
  }

  /** The approval, with a pending one past its expiry turned into `expired`. */
  async get(id: string): Promise<Approval | null> {
    return (await this.read(id))?.approval ?? null;
  }

  private async read(id: string): Promise<{ approval: Approval; rev: string } | null> {
    const h = await this.redis.hgetall(this.key(id));
    if (!h.json) return null;
    const a = { ...(JSON.parse(h.json) as Approval), status: h.status as ApprovalStatus };
    const rev = h.rev ?? "0";
    if (a.status === "pending" && Date.parse(a.expires_at) <= this.now()) {
      const expired: Approval = { ...a, status: "expired", decided_at: a.expires_at };
      await this.transition(a, "pending", expired);
      await this.redis.zrem(this.pendingKey(a.agent), a.id);
      return { approval: expired, rev };
    }
    return { approval: a, rev };
  }

  /** Moves an approval from one status to another; false when it was no longer in `from`. */
  async transition(
    a: Approval,
    from: ApprovalStatus | "redeeming",
    next: Approval,
    status?: string,
    rev?: string,
  ): Promise<boolean> {
    const r = await this.redis.eval(
      TRANSITION,
      1,
      this.key(a.id),
      from,
      status ?? next.status,
      JSON.stringify(next),
      rev ?? "",
    );
    return r === 1;
  }

  /**
   * Records one approver's vote on a pending approval. A deny denies at once; an approve counts
   * once per distinct approver (names compared case- and width-insensitively) and turns the
   * approval approved at `minApprovers`. Concurrent votes never overwrite each other: a vote
   * that lost a race is retried on the new state, and `changed` reported only if it keeps losing.
   */
  async vote(id: string, v: Vote): Promise<VoteResult> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const got = await this.read(id);
      if (!got) return { kind: "not_found" };
      const a = got.approval;
      if (a.status !== "pending") return { kind: "not_pending", approval: a };
      const approvers = a.approvers ?? [];
      if (v.approve && approvers.some((n) => normalName(n) === normalName(v.approver)))
        return { kind: "already_voted", approval: a };
      const next = this.afterVote(a, approvers, v);
      if (await this.transition(a, "pending", next, undefined, got.rev)) {
        if (next.status !== "pending") await this.redis.zrem(this.pendingKey(a.agent), a.id);
        return { kind: "recorded", approval: next };
      }
    }
    return { kind: "changed" };
  }

  private afterVote(a: Approval, approvers: readonly string[], v: Vote): Approval {
    const decidedAt = new Date(this.now()).toISOString();
    if (!v.approve) {
      return { ...a, status: "denied", approver: v.approver, reason: v.reason, decided_at: decidedAt };
    }
    const all = [...approvers, v.approver];
    const done = all.length >= this.minApprovers;
    return {
      ...a,
      approvers: all,
      ...(done
        ? { status: "approved", approver: all.join(", "), reason: v.reason, decided_at: decidedAt }
        : {}),
    };
  }

  /** Takes the right to turn an approved request into a lease (once). */
  async claimRedeem(a: Approval): Promise<boolean> {
    return this.transition(a, "approved", a, "redeeming");
  }

  async releaseRedeem(a: Approval, leaseId?: string): Promise<void> {
    const next = leaseId ? { ...a, lease_id: leaseId } : a;
    await this.transition(a, "redeeming", next, "approved");
  }

  /**
   * Every approval of the last day, newest first, as rows (status as a poll would show it). One
   * pipelined read of a few hash fields each: filtering and counting never read whole records.
   */
  async rows(): Promise<ApprovalRow[]> {
    const now = this.now();
    await this.redis.zremrangebyscore(this.index, "-inf", now - DAY_MS);
    const flat = await this.redis.zrevrange(this.index, 0, -1, "WITHSCORES");
    const ids: Array<{ id: string; at: number }> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) ids.push({ id: flat[i] as string, at: Number(flat[i + 1]) });
    const fields = (await this.pipelined(
      ids.map(({ id }) => ["hmget", this.key(id), "status", "expires", "resource"]),
    )) as Array<Array<string | null> | undefined>;
    // Records written before `expires` and `resource` were kept in the hash: their JSON says.
    const legacy = ids.filter((_, i) => !fields[i]?.[1] || !fields[i]?.[2]);
    const jsons = await this.pipelined(legacy.map(({ id }) => ["hget", this.key(id), "json"]));
    const old = new Map(
      legacy.map(({ id }, i) => {
        const json = jsons[i];
        return [id, typeof json === "string" ? (JSON.parse(json) as Approval) : undefined] as const;
      }),
    );
    const out: ApprovalRow[] = [];
    ids.forEach(({ id, at }, i) => {
      const [status, expires, resource] = fields[i] ?? [];
      if (!status) return;
      const parsed = old.get(id);
      if (old.has(id) && !parsed) return;
      const expiresAt = expires ? Number(expires) : Date.parse(parsed?.expires_at ?? "");
      out.push({
        id,
        at,
        status: effectiveStatus(status, expiresAt, now),
        resource: resource ?? parsed?.resource ?? "",
      });
    });
    return out;
  }

  /** Runs the commands in one round trip; a failed command's answer is undefined. */
  private async pipelined(commands: string[][]): Promise<unknown[]> {
    if (commands.length === 0) return [];
    const answers = (await this.redis.pipeline(commands).exec()) ?? [];
    return answers.map(([err, value]) => (err ? undefined : value));
  }

  /** The approvals with these ids, in this order (those gone meanwhile left out). */
  async getMany(ids: readonly string[]): Promise<Approval[]> {
    const out: Approval[] = [];
    for (const id of ids) {
      const a = await this.get(id);
      if (a) out.push(a);
    }
    return out;
  }
}
