import type { Cluster, Redis } from "ioredis";
import type { AuditMirrorTarget, AuditRecord } from "./types.js";

/** Default approximate length cap of the audit stream. */
export const DEFAULT_STREAM_MAXLEN = 100_000;

/**
 * Records one mirror command carries at most: the script runs its XADDs as one command, and Redis
 * serves no other client meanwhile (a log batch can hold tens of thousands of records).
 */
const MAX_BATCH = 500;

/** Records waiting for the mirror at most (Redis hangs or falls behind): older ones are dropped. */
const MAX_QUEUED = 10_000;

/**
 * Adds one stream entry per record, in order. ARGV[1] is MAXLEN, ARGV[2] the sidecar, ARGV[3] one
 * "<seq> <event>\n" per record, ARGV[4] the records' lines as the file has them (each ends in a
 * newline; JSON never holds a raw one). The client sends the bytes the log wrote as they are, in
 * four arguments whatever the number of records (the client's cost per argument dominated);
 * Redis does the same XADDs.
 */
const XADD_ALL = {
  numberOfKeys: 1,
  lua: `local lines = ARGV[4]
local pos = 1
local n = 0
for seq, event in string.gmatch(ARGV[3], '(%d+) ([^\\n]+)\\n') do
  local stop = string.find(lines, '\\n', pos, true)
  if not stop then break end
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'sidecar', ARGV[2], 'seq', seq, 'event', event, 'record', string.sub(lines, pos, stop - 1))
  pos = stop + 1
  n = n + 1
end
return n`,
};
const XADD_ALL_NAME = "leaseholdAuditXaddLines";

type XaddAllRedis = (Redis | Cluster) & {
  [XADD_ALL_NAME](key: string, maxLen: string, sidecar: string, meta: string, lines: Buffer): Promise<number>;
};

/** Records of one write of the log, waiting for the stream. */
interface Chunk {
  readonly sidecar: string;
  /** "<seq> <event>\n" per record. */
  readonly meta: string;
  /** The records' lines, as written to the file. */
  readonly lines: Buffer;
  readonly count: number;
}

/** A protocol listener's record of one statement (statement-trail.ts); not its refusals. */
export function isStatementRecord(r: AuditRecord): boolean {
  return r.event === "tool_call" && r.scope === "proxy_statement";
}

/** The records that are not statement records, and their lines (one per record, in order). */
function withoutStatements(
  records: readonly AuditRecord[],
  lines: Buffer,
): { records: AuditRecord[]; lines: Buffer } {
  const kept: AuditRecord[] = [];
  const pieces: Buffer[] = [];
  let start = 0;
  for (const r of records) {
    const end = lines.indexOf(0x0a, start) + 1;
    if (end === 0) throw new Error("an audit write has fewer lines than records");
    if (!isStatementRecord(r)) {
      kept.push(r);
      pieces.push(lines.subarray(start, end));
    }
    start = end;
  }
  return { records: kept, lines: pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces) };
}

/**
 * Copies written records to a Redis stream for live readers (dashboards, SIEM shippers). The file
 * stays the truth: a failed XADD is reported and dropped, and never delays or fails an append.
 * Off the request path: each write's records are queued as the bytes written, and one command at
 * a time (a script doing one XADD per record) carries whatever queued since the last one left
 * (sent on the next turn of the event loop, after the request's own commands), so a burst of
 * appends costs one round trip and one command, not one each.
 * Each entry carries `sidecar`, `seq` and `event` for cheap filtering, and the whole `record`.
 * Statement records are left out unless the target asks for them (`statements`).
 */
export class AuditStreamMirror {
  private queue: Chunk[] = [];
  private queued = 0;
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
   * Queues records for the stream, in order; returns at once. `lines` are the records' JSON
   * lines as written to the file, each ending in a newline, one per record.
   */
  publish(records: readonly AuditRecord[], lines: Buffer): void {
    if (!this.target.statements && records.some(isStatementRecord)) {
      ({ records, lines } = withoutStatements(records, lines));
    }
    const first = records[0];
    if (!first) return;
    let meta = "";
    for (const r of records) meta += `${r.seq} ${r.event}\n`;
    this.queue.push({ sidecar: first.sidecar, meta, lines, count: records.length });
    this.queued += records.length;
    let dropped = 0;
    while (this.queued > MAX_QUEUED && this.queue.length > 1) {
      const old = this.queue.shift() as Chunk;
      this.queued -= old.count;
      dropped += old.count;
    }
    if (dropped > 0) {
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

  /** The oldest chunk, or its first MAX_BATCH records when it holds more (the rest stays first). */
  private takeHead(): Chunk {
    const head = this.queue[0] as Chunk;
    if (head.count <= MAX_BATCH) {
      this.queue.shift();
      return head;
    }
    let meta = 0;
    let lines = 0;
    for (let i = 0; i < MAX_BATCH; i++) {
      meta = head.meta.indexOf("\n", meta) + 1;
      lines = head.lines.indexOf(0x0a, lines) + 1;
    }
    this.queue[0] = {
      sidecar: head.sidecar,
      meta: head.meta.slice(meta),
      lines: head.lines.subarray(lines),
      count: head.count - MAX_BATCH,
    };
    return {
      sidecar: head.sidecar,
      meta: head.meta.slice(0, meta),
      lines: head.lines.subarray(0, lines),
      count: MAX_BATCH,
    };
  }

  /** Whole chunks of one sidecar, oldest first, up to MAX_BATCH records (a larger one is split). */
  private nextBatch(): Chunk {
    const first = this.takeHead();
    let count = first.count;
    const more: Chunk[] = [];
    while (this.queue.length > 0) {
      const next = this.queue[0] as Chunk;
      if (next.sidecar !== first.sidecar || count + next.count > MAX_BATCH) break;
      more.push(next);
      count += next.count;
      this.queue.shift();
    }
    this.queued -= count;
    if (more.length === 0) return first;
    const all = [first, ...more];
    return {
      sidecar: first.sidecar,
      meta: all.map((c) => c.meta).join(""),
      lines: Buffer.concat(all.map((c) => c.lines)),
      count,
    };
  }

  private flush(): void {
    if (this.sending || this.queue.length === 0) return;
    const batch = this.nextBatch();
    this.sending = this.send(batch)
      .catch((err: unknown) => this.onError?.(err instanceof Error ? err : new Error(String(err))))
      .finally(() => {
        this.sending = undefined;
        this.kick();
      });
  }

  private async send(batch: Chunk): Promise<void> {
    const maxLen = String(this.target.maxLen ?? DEFAULT_STREAM_MAXLEN);
    await this.redis[XADD_ALL_NAME](this.target.key, maxLen, batch.sidecar, batch.meta, batch.lines);
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
