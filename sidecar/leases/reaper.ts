import type { Logger } from "../logger.js";
import type { LeaseStore } from "./lease-store.js";

export interface ReaperOptions {
  leases: LeaseStore;
  /** Ends one lease as expired (and schedules its rotation); must be idempotent. */
  expire: (resource: string, leaseId: string) => Promise<unknown>;
  intervalMs: number;
  log: Logger;
  /** How long a claim stays invisible to other reapers. @default 30000 */
  visibilityMs?: number;
  /** Leases claimed per pass, over every resource (per resource on Redis Cluster). @default 500 */
  batch?: number;
  /** Leases of one pass ended at once. @default 8 */
  concurrency?: number;
  /**
   * False while this Redis is not confirmed to be the cluster's (cluster_mismatch): its expiry
   * schedule may be another cluster's, so a pass claims nothing. @default always true
   */
  enabled?: () => boolean;
}

/**
 * Ends leases past expires_at. Claims are atomic (Lua), so several sidecars reap together and
 * none ends a lease twice; a claimer that dies has its claims come back after the visibility time.
 */
export class Reaper {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;

  constructor(private readonly o: ReaperOptions) {}

  start(): void {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      this.timer = setTimeout(async () => {
        await this.runOnce().catch((err: unknown) =>
          this.o.log.warn({ err: { message: (err as Error).message } }, "reaper pass failed"),
        );
        tick();
      }, this.o.intervalMs);
      this.timer.unref();
    };
    tick();
  }

  /**
   * One pass: claims the due leases of every resource at once (one round trip on a single
   * Redis, `batch` at most) and ends them, `concurrency` at a time. Returns how many it ended.
   */
  async runOnce(): Promise<number> {
    if (this.running || this.o.enabled?.() === false) return 0;
    this.running = true;
    let n = 0;
    try {
      const claimed = await this.o.leases.claimDueAll(this.o.batch ?? 500, this.o.visibilityMs ?? 30_000);
      let next = 0;
      const worker = async () => {
        for (let ref = claimed[next++]; ref; ref = claimed[next++]) {
          // One lease that cannot be ended must not hold back the rest of the batch; its claim
          // comes back after the visibility timeout and is tried again.
          try {
            await this.o.expire(ref.resource, ref.id);
            n++;
          } catch (err) {
            this.o.log.warn(
              { resource: ref.resource, leaseId: ref.id, err: { message: (err as Error).message } },
              "could not end an expired lease",
            );
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.o.concurrency ?? 8, claimed.length) }, worker));
    } finally {
      this.running = false;
    }
    return n;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
