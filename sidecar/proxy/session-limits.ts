import type { LeaseRecord } from "../leases/index.js";
import type { SessionContext } from "./session-context.js";
import { recordDenial } from "./decision-record.js";
import type { SessionRecord } from "./session-record.js";
import type { Splice } from "./splice.js";
import type { ProxyProtocol } from "./types.js";

/** A registration's `proxy.limits`: caps per lease, across its sessions in this process. */
export interface ProxyLimits {
  /** Statements (Redis: commands) per second; beyond, the lease's sessions wait. */
  readonly statementsPerSecond?: number | undefined;
  /** Bytes the server may return to the lease's sessions in all; beyond, the session ends. */
  readonly bytesReturned?: number | undefined;
}

/**
 * One lease's counters: a token bucket of statements (as many as `statementsPerSecond`, refilled
 * at that rate; taking more than there are is a debt its sessions wait out) and the bytes
 * returned, for the lease's lifetime (a new session does not start them over).
 */
export class LeaseMeter {
  private tokens: number;
  private at: number;
  private bytes = 0;

  constructor(
    readonly limits: ProxyLimits,
    readonly until: number,
    private readonly now: () => number,
  ) {
    this.tokens = limits.statementsPerSecond ?? 0;
    this.at = now();
  }

  /** Takes `n` statements; returns the ms until the bucket is out of debt (0: none). */
  take(n: number): number {
    const rate = this.limits.statementsPerSecond;
    if (rate === undefined) return 0;
    const t = this.now();
    this.tokens = Math.min(rate, this.tokens + ((t - this.at) / 1000) * rate);
    this.at = t;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / rate) * 1000);
  }

  /** Counts `n` bytes returned; true once more than `bytesReturned` have been. */
  returned(n: number): boolean {
    this.bytes += n;
    return this.exhausted;
  }

  get exhausted(): boolean {
    const cap = this.limits.bytesReturned;
    return cap !== undefined && this.bytes > cap;
  }
}

/** The meters of the leases with sessions on this process's listeners (per process, not per cluster). */
export class LeaseLimits {
  private readonly meters = new Map<string, LeaseMeter>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The lease's meter, made at its first session; undefined when the registration sets no limits. */
  meter(lease: LeaseRecord, limits: ProxyLimits | undefined): LeaseMeter | undefined {
    if (!limits || (limits.statementsPerSecond === undefined && limits.bytesReturned === undefined))
      return undefined;
    const t = this.now();
    for (const [id, m] of this.meters) if (m.until < t) this.meters.delete(id);
    let m = this.meters.get(lease.id);
    if (!m) {
      m = new LeaseMeter(limits, lease.max_expires_at, this.now);
      this.meters.set(lease.id, m);
    }
    return m;
  }

  /** Drops an ended lease's counters. */
  forget(leaseId: string): void {
    this.meters.delete(leaseId);
  }
}

/** Why a session of a lease past its byte cap ends (or is refused). */
export function bytesExceeded(meter: LeaseMeter): string {
  return `the lease's sessions were returned more than ${meter.limits.bytesReturned} bytes (proxy.limits.bytesReturned)`;
}

/**
 * One session's side of its lease's limits: statements counted by the protocol's framing hold
 * the client while the lease's bucket is in debt (backpressure: nothing is refused), and bytes
 * from the server are counted; once the lease is past its byte cap `onExceeded` is called, once,
 * before the chunk that crossed it is relayed (the session should stop relaying and end).
 */
export class SessionLimiter {
  private splice: Splice | undefined;
  private timer: NodeJS.Timeout | undefined;
  private over = false;
  private closed = false;
  /** The client was held at least once (for the session's record). */
  held = false;

  constructor(
    readonly meter: LeaseMeter,
    private readonly onExceeded: (why: string) => void,
    /** The statements in a chunk from the client, by the protocol's framing. */
    private readonly count: (chunk: Buffer) => number,
  ) {}

  /** The session's splice, held while the lease's bucket is in debt; the limiter stops with it. */
  attach(splice: Splice): void {
    this.splice = splice;
    void splice.closed.then(() => this.close());
  }

  /** The splice options that feed it: what the client sends, what the server returns. */
  taps(): { onUp: (chunk: Buffer) => void; onDown: (chunk: Buffer) => void } {
    return { onUp: (c) => this.sent(c), onDown: (c) => this.returned(c.length) };
  }

  /** A chunk the client sent (before the splice too: its statements count). */
  sent(chunk: Buffer): void {
    this.statements(this.count(chunk));
  }

  /** `n` statements the client sent. */
  statements(n: number): void {
    if (n === 0 || this.closed) return;
    const wait = this.meter.take(n);
    if (wait > 0 && !this.timer && this.splice) {
      this.held = true;
      this.splice.up.hold();
      this.timer = setTimeout(() => this.resume(), wait);
    }
  }

  private resume(): void {
    this.timer = undefined;
    if (this.closed) return;
    // Other sessions of the lease may have taken more meanwhile: wait out the debt as it is now.
    const wait = this.meter.take(0);
    if (wait > 0) {
      this.timer = setTimeout(() => this.resume(), wait);
      return;
    }
    this.splice?.up.release();
  }

  /** `n` bytes the server returned. */
  returned(n: number): void {
    if (this.over || this.closed || !this.meter.returned(n)) return;
    this.over = true;
    this.onExceeded(bytesExceeded(this.meter));
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

export interface SessionLimitsOptions {
  readonly ctx: SessionContext;
  /** The session's record: its lease, once its token was checked. */
  readonly record: SessionRecord;
  readonly tool: ProxyProtocol;
  /** Ends the session, telling the client `why` where the protocol allows. */
  readonly end: (why: string) => void;
  /** The protocol's refusal of a login, thrown when the lease is already past its byte cap. */
  readonly refusal: (why: string) => Error;
  /** The statements in a chunk from the client, by the protocol's framing. */
  readonly count: (chunk: Buffer) => number;
}

/**
 * The limiter of a session under its registration's `proxy.limits` (undefined without any):
 * passing the byte cap writes a `decision` record (scope `proxy_limit`) and ends the session.
 * @throws `refusal(why)` when the lease is past its byte cap already: its logins are refused.
 */
export function sessionLimiter(o: SessionLimitsOptions): SessionLimiter | undefined {
  const limits = o.ctx.registration()?.proxy?.limits;
  const meter = o.record.lease && o.ctx.leaseLimits?.meter(o.record.lease, limits);
  if (!meter) return undefined;
  if (meter.exhausted) throw o.refusal(bytesExceeded(meter));
  return new SessionLimiter(
    meter,
    (why) => {
      recordDenial({ ...o, scope: "proxy_limit", reason: why, message: why, onFailure: () => undefined });
      o.end(why);
    },
    o.count,
  );
}
