import type { RedisClient } from "../redis.js";
import type { Logger } from "../logger.js";

export interface LeaseEndFollowerOptions {
  /** A connection of its own: XREAD BLOCK holds it. Disconnected by `stop()`. */
  redis: RedisClient;
  /** The lease event stream, `${prefix}events`. */
  stream: string;
  onEnded: (leaseId: string, reason: string) => void;
  log: Logger;
  /** How long one XREAD blocks, ms. @default 2000 */
  blockMs?: number;
  /**
   * After a read that found events, how long to let more gather before the next read, ms: under
   * load one read then carries many events instead of one each (every checkout writes one), and
   * an end is acted on at most this much later. @default 20
   */
  settleMs?: number;
}

function fieldsOf(flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}

/**
 * Follows the cluster's lease event stream, so a lease ended by any sidecar closes this
 * sidecar's connections too. Reads resume from the last id seen, so a reconnect loses nothing.
 */
export class LeaseEndFollower {
  private stopped = false;
  private loop: Promise<void> | undefined;
  /** Ends the pause between reads (on stop). */
  private wake: (() => void) | undefined;

  constructor(private readonly o: LeaseEndFollowerOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    let last: string | undefined;
    const block = this.o.blockMs ?? 2000;
    const settle = this.o.settleMs ?? 20;
    let failures = 0;
    while (!this.stopped) {
      try {
        if (last === undefined) {
          // A concrete id rather than "$": events between two reads are never skipped.
          const tail = await this.o.redis.xrevrange(this.o.stream, "+", "-", "COUNT", 1);
          last = tail[0]?.[0] ?? "0-0";
        }
        const res = await this.o.redis.xread("COUNT", 500, "BLOCK", block, "STREAMS", this.o.stream, last);
        let read = 0;
        for (const [, entries] of res ?? []) {
          for (const [id, flat] of entries) {
            last = id;
            read += 1;
            const f = fieldsOf(flat);
            if (f.type === "ended" && f.lease_id) this.o.onEnded(f.lease_id, f.reason ?? "ended");
          }
        }
        failures = 0;
        if (read > 0 && read < 500 && settle > 0 && !this.stopped) await this.pause(settle);
      } catch (err) {
        if (this.stopped) break;
        failures += 1;
        if (failures === 1 || failures % 20 === 0) {
          this.o.log.warn(
            { err: { message: (err as Error).message }, failures },
            "lease event stream read failed; retrying",
          );
        }
        await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** Math.min(failures, 5))));
      }
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      setTimeout(resolve, ms);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.o.redis.disconnect();
    await this.loop;
  }
}
