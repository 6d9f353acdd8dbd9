import type { Cluster, Redis } from "ioredis";
import type { AuditMirrorTarget, AuditRecord } from "./types.js";

/** Default approximate length cap of the audit stream. */
export const DEFAULT_STREAM_MAXLEN = 100_000;

/**
 * Copies written records to a Redis stream for live readers (dashboards, SIEM shippers). The file
 * stays the truth: a failed XADD is reported and dropped, and never delays or fails an append.
 * Each entry carries `sidecar`, `seq` and `event` for cheap filtering, and the whole `record`.
 */
export class AuditStreamMirror {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly target: AuditMirrorTarget,
    private readonly onError?: (err: Error) => void,
  ) {}

  /** Sends one batch (in order, one pipeline); returns at once. */
  publish(records: readonly AuditRecord[]): void {
    if (records.length === 0) return;
    const p: Promise<void> = this.send(records)
      .catch((err: unknown) => this.onError?.(err instanceof Error ? err : new Error(String(err))))
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  private async send(records: readonly AuditRecord[]): Promise<void> {
    const maxLen = String(this.target.maxLen ?? DEFAULT_STREAM_MAXLEN);
    const pipe = this.target.redis.pipeline();
    for (const r of records) {
      pipe.xadd(
        this.target.key,
        "MAXLEN",
        "~",
        maxLen,
        "*",
        "sidecar",
        r.sidecar,
        "seq",
        String(r.seq),
        "event",
        r.event,
        "record",
        JSON.stringify(r),
      );
    }
    const results = (await pipe.exec()) ?? [];
    const failed = results.find(([err]) => err !== null);
    if (failed?.[0]) throw failed[0];
  }

  /** Waits for every batch sent so far (used on close), but never longer than the drain timeout. */
  async drain(): Promise<void> {
    if (this.pending.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.target.drainTimeoutMs ?? 2000);
    });
    await Promise.race([Promise.allSettled([...this.pending]), timeout]);
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
