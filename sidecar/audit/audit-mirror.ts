import type { Cluster, Redis } from "ioredis";
import type { AuditMirrorTarget, AuditRecord } from "./types.js";

/** Default approximate length cap of the audit stream. */
export const DEFAULT_STREAM_MAXLEN = 100_000;

/** Records one mirror command carries at most. */
const MAX_BATCH = 500;

/** Records waiting for the mirror at most (Redis hangs or falls behind): older ones are dropped. */
const MAX_QUEUED = 10_000;

/**
 * Adds one stream entry per record, in order: ARGV[1] is MAXLEN, then sidecar, seq, event and
 * record for each. One command per batch instead of one XADD each (the client's cost per command
 * dominated); Redis does the same XADDs.
 */
const XADD_ALL = {
  numberOfKeys: 1,
  lua: `for i = 2, #ARGV, 4 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'sidecar', ARGV[i], 'seq', ARGV[i + 1], 'event', ARGV[i + 2], 'record', ARGV[i + 3])
end
return (#ARGV - 1) / 4`,
};
const XADD_ALL_NAME = "leaseholdAuditXaddAll";

type XaddAllRedis = (Redis | Cluster) & {
  [XADD_ALL_NAME](key: string, ...args: string[]): Promise<number>;
};

/**
 * Copies written records to a Redis stream for live readers (dashboards, SIEM shippers). The file
 * stays the truth: a failed XADD is reported and dropped, and never delays or fails an append.
 * Off the request path: records are queued, and one command at a time (a script doing one XADD
 * per record) carries whatever queued since the last one left (sent on the next turn of the
 * event loop, after the request's own commands), so a burst of appends costs one round trip and
 * one command, not one each.
 * Each entry carries `sidecar`, `seq` and `event` for cheap filtering, and the whole `record`.
 */
/** One stream entry to add: the filter fields and the record's JSON. */
interface Entry {
  readonly sidecar: string;
  readonly seq: string;
  readonly event: string;
  readonly json: string;
}

export class AuditStreamMirror {
  private queue: Entry[] = [];
  private sending: Promise<void> | undefined;
  private scheduled = false;

  private readonly redis: XaddAllRedis;

  constructor(
    private readonly target: AuditMirrorTarget,
    private readonly onError?: (err: Error) => void,
  ) {
    if (!(XADD_ALL_NAME in target.redis)) target.redis.defineCommand(XADD_ALL_NAME, XADD_ALL);
    this.redis = target.redis as XaddAllRedis;
  }

  /**
   * Queues records for the stream, in order; returns at once. `lines`, when given, are the
   * records' JSON as written to the file (not serialised twice).
   */
  publish(records: readonly AuditRecord[], lines?: readonly string[]): void {
    if (records.length === 0) return;
    for (let i = 0; i < records.length; i++) {
      const r = records[i] as AuditRecord;
      this.queue.push({
        sidecar: r.sidecar,
        seq: String(r.seq),
        event: r.event,
        json: lines?.[i] ?? JSON.stringify(r),
      });
    }
    if (this.queue.length > MAX_QUEUED) {
      const dropped = this.queue.length - MAX_QUEUED;
      this.queue.splice(0, dropped);
      this.onError?.(
        new Error(
          `the audit stream mirror fell behind: ${dropped} records were not mirrored (the file has them)`,
        ),
      );
    }
    this.kick();
  }

  private kick(): void {
    if (this.sending || this.scheduled || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.sending || this.queue.length === 0) return;
    const batch = this.queue.splice(0, MAX_BATCH);
    this.sending = this.send(batch)
      .catch((err: unknown) => this.onError?.(err instanceof Error ? err : new Error(String(err))))
      .finally(() => {
        this.sending = undefined;
        this.kick();
      });
  }

  private async send(records: readonly Entry[]): Promise<void> {
    const args: string[] = [String(this.target.maxLen ?? DEFAULT_STREAM_MAXLEN)];
    for (const r of records) args.push(r.sidecar, r.seq, r.event, r.json);
    await this.redis[XADD_ALL_NAME](this.target.key, ...args);
  }

  /** Until every record queued so far is sent (or failed). */
  private async settled(): Promise<void> {
    while (this.sending || this.scheduled || this.queue.length > 0) {
      await (this.sending ?? new Promise<void>((resolve) => setImmediate(resolve)));
    }
  }

  /** Waits for every record queued so far to be sent (used on close), but never longer than the drain timeout. */
  async drain(): Promise<void> {
    if (!this.sending && !this.scheduled && this.queue.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.target.drainTimeoutMs ?? 2000);
    });
    await Promise.race([this.settled(), timeout]);
    clearTimeout(timer);
  }
}

export interface StreamRecord {
  /** The stream entry id. */
  readonly id: string;
  readonly record: AuditRecord;
}

/**
 * Reads audit records from the stream, oldest first, after entry `after` (exclusive; "-" for
 * the beginning). Entries that are not audit records are skipped.
 */
export async function readAuditStream(
  redis: Redis | Cluster,
  key: string,
  opts: { after?: string; count?: number } = {},
): Promise<StreamRecord[]> {
  const start = opts.after && opts.after !== "-" ? `(${opts.after}` : "-";
  const entries = await redis.xrange(key, start, "+", "COUNT", opts.count ?? 1000);
  const out: StreamRecord[] = [];
  for (const [id, fields] of entries) {
    const i = fields.indexOf("record");
    const raw = i >= 0 && i % 2 === 0 ? fields[i + 1] : undefined;
    if (raw === undefined) continue;
    try {
      out.push({ id, record: JSON.parse(raw) as AuditRecord });
    } catch {
      // not one of ours
    }
  }
  return out;
}
