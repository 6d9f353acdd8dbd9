import { randomBytes } from "node:crypto";
import type { RedisClient } from "../redis.js";

export type ApprovalStatus = "pending" | "approved" | "denied" | "expired";

/** A checkout that policy allows only with a human's approval. */
export interface Approval {
  readonly id: string;
  readonly status: ApprovalStatus;
  readonly agent: string;
  readonly resource: string;
  readonly task: { readonly id: string; readonly description?: string | undefined };
  readonly intent: { readonly action: string; readonly tool?: string | undefined };
  readonly ttl: number;
  readonly policies: readonly string[];
  readonly requested_at: string;
  readonly expires_at: string;
  readonly decided_at?: string | undefined;
  readonly approver?: string | undefined;
  readonly reason?: string | undefined;
  readonly lease_id?: string | undefined;
}

/** KEYS: approval. ARGV: from-status, to-status, json. Changes status only from the expected one. */
const TRANSITION = `local st = redis.call('HGET', KEYS[1], 'status')
if st ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'json', ARGV[3])
return 1`;

export interface ApprovalStoreOptions {
  /** The wall clock (ms since the epoch) that request and expiry times are read from. @default Date.now */
  now?: () => number;
}

/** Pending approvals and their outcome, in Redis (shared by every sidecar of the cluster). */
export class ApprovalStore {
  private readonly now: () => number;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    options: ApprovalStoreOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  private key(id: string): string {
    return `${this.prefix}approval:${id}`;
  }

  private get index(): string {
    return `${this.prefix}approvals`;
  }

  async create(
    input: Omit<Approval, "id" | "status" | "requested_at" | "expires_at">,
    ttlSeconds: number,
  ): Promise<Approval> {
    const now = this.now();
    const a: Approval = {
      ...input,
      id: `apr_${randomBytes(12).toString("base64url")}`,
      status: "pending",
      requested_at: new Date(now).toISOString(),
      expires_at: new Date(now + ttlSeconds * 1000).toISOString(),
    };
    // Separate commands: the approval and the index may live in different cluster slots.
    await this.redis.hset(this.key(a.id), "status", a.status, "json", JSON.stringify(a));
    await this.redis.pexpire(this.key(a.id), ttlSeconds * 1000 + 24 * 3600 * 1000);
    await this.redis.zadd(this.index, now, a.id);
    return a;
  }

  /** The approval, with a pending one past its expiry turned into `expired`. */
  async get(id: string): Promise<Approval | null> {
    const h = await this.redis.hgetall(this.key(id));
    if (!h.json) return null;
    const a = { ...(JSON.parse(h.json) as Approval), status: h.status as ApprovalStatus };
    if (a.status === "pending" && Date.parse(a.expires_at) <= this.now()) {
      const expired: Approval = { ...a, status: "expired", decided_at: a.expires_at };
      await this.transition(a, "pending", expired);
      return expired;
    }
    return a;
  }

  /** Moves an approval from one status to another; false when it was no longer in `from`. */
  async transition(
    a: Approval,
    from: ApprovalStatus | "redeeming",
    next: Approval,
    status?: string,
  ): Promise<boolean> {
    const r = await this.redis.eval(
      TRANSITION,
      1,
      this.key(a.id),
      from,
      status ?? next.status,
      JSON.stringify(next),
    );
    return r === 1;
  }

  /** Takes the right to turn an approved request into a lease (once). */
  async claimRedeem(a: Approval): Promise<boolean> {
    return this.transition(a, "approved", a, "redeeming");
  }

  async releaseRedeem(a: Approval, leaseId?: string): Promise<void> {
    const next = leaseId ? { ...a, lease_id: leaseId } : a;
    await this.transition(a, "redeeming", next, "approved");
  }

  /** Recent approvals, newest first (pending and decided). */
  async list(limit = 200): Promise<Approval[]> {
    const cutoff = this.now() - 24 * 3600 * 1000;
    await this.redis.zremrangebyscore(this.index, "-inf", cutoff);
    const ids = await this.redis.zrevrange(this.index, 0, limit - 1);
    const out: Approval[] = [];
    for (const id of ids) {
      const a = await this.get(id);
      if (a) out.push(a);
    }
    return out;
  }
}
