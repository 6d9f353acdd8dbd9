import type { LeaseEventPublisher } from "../events/index.js";
import type { Logger } from "../logger.js";
import type { RedisClient } from "../redis.js";
import type { LeaseStateSource } from "./types.js";

export interface ExpiryNotifierOptions {
  readonly leases: LeaseStateSource;
  /** Where notices go (the channel: the stream, and this sidecar's metrics). */
  readonly events: LeaseEventPublisher;
  /** Shared connection: one SET NX per notice, so a cluster emits each notice once. */
  readonly redis: RedisClient;
  readonly prefix: string;
  /** Notice this long before expires_at, seconds. */
  readonly leadSeconds: number;
  /** How often leases are looked at, ms. @default 1000 */
  readonly intervalMs?: number;
  readonly log: Logger;
  /**
   * The clock leases are compared with, ms since the epoch; a test passes a frozen one.
   * @default the lease store's (Redis') clock, the one lease times come from
   */
  readonly now?: (() => number | Promise<number>) | undefined;
}

/**
 * Emits one `expiring_soon` event per lease and expiry time, `leadSeconds` before it expires
 * (a renewed lease gets a new notice before its new expiry). A lease is never noticed in the
 * first half of its life, so short leases do not page as soon as they are issued. Several
 * sidecars may run it: a SET NX per lease and expiry time lets exactly one of them emit.
 */
export class ExpiryNotifier {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;

  constructor(private readonly o: ExpiryNotifierOptions) {}

  start(): void {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      this.timer = setTimeout(async () => {
        await this.runOnce().catch((err: unknown) =>
          this.o.log.warn({ err: { message: (err as Error).message } }, "expiry notice pass failed"),
        );
        tick();
      }, this.o.intervalMs ?? 1000);
      this.timer.unref();
    };
    tick();
  }

  /** One pass; returns how many notices this sidecar emitted. */
  async runOnce(): Promise<number> {
    if (this.running) return 0;
    this.running = true;
    let n = 0;
    try {
      const lead = this.o.leadSeconds * 1000;
      const now = await (this.o.now ?? (() => this.o.leases.now()))();
      for (const resource of await this.o.leases.resources()) {
        // Only the leases due within the lead time: a range read of the expiry schedule, so the
        // cost follows the leases about to expire, not every lease outstanding.
        for (const l of await this.o.leases.expiringBetween(resource, now + 1, now + lead)) {
          const left = l.expires_at - now;
          if (left <= 0 || left > Math.min(lead, (l.expires_at - l.issued_at) / 2)) continue;
          const key = `${this.o.prefix}ops:expiring:${l.id}:${l.expires_at}`;
          const first = await this.o.redis.set(key, "1", "PX", left + 60_000, "NX");
          if (first !== "OK") continue;
          await this.o.events.publish({
            type: "expiring_soon",
            lease: l,
            seconds_left: Math.ceil(left / 1000),
          });
          n++;
        }
      }
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
