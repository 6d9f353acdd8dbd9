import { createSecretKey, type KeyObject } from "node:crypto";
import { mkdir, rename, stat } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { LeaseholdError } from "../errors.js";
import { lastRecordOf, lastRecordOfSet, nextRotatedPath } from "./audit-files.js";
import { AuditStreamMirror } from "./audit-mirror.js";
import { GENESIS, type SealedRecord, sealLine } from "./chain.js";
import { dropTornTail, type OpenFile, openLive } from "./live-file.js";
import { TemplatedFields } from "./record-template.js";
import { type Pending, WriteQueue } from "./write-queue.js";
import type {
  AppendOptions,
  AppendOutcome,
  AuditErrorPlace,
  AuditEvent,
  AuditFields,
  AuditLogOptions,
  AuditRecord,
  AuditSink,
} from "./types.js";

const DEFAULT_WATCH_MS = 1000;
const DEFAULT_LINGER_MS = 25;
const DEFAULT_BATCH_DELAY_MS = 25;
function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Append-only, hash-chained JSONL audit file (DESIGN.md I6).
 *
 * - Appends are queued and written in batches (group commit), in the order they were appended:
 *   one write and one fdatasync per batch; an append resolves only once its record is on disk
 *   (DESIGN.md I6: the decision is recorded before the action). A record appended `withNext`
 *   waits (at most `lingerMs`) for the next append and goes to disk in the same batch.
 * - Records nobody awaits (`appendDeferred`: a listener's statement records) wait for a batch
 *   of `maxBatch` records or `batchDelayMs`, whichever comes first (or an awaited append, whose
 *   batch takes them along), so a stream of statements costs one flush per batch. Their queue is
 *   bounded (`maxQueued`, `maxQueuedBytes`): a record past the bound is dropped and counted, and
 *   the next batch starts with an `admin` / `audit_dropped` record saying how many (`dropped`).
 *   `close()` writes everything queued. See docs/audit.md "Statement records" for what a crash loses.
 * - Each record holds the hash of the one before (`prev`), across restarts and across rotated
 *   files; with a key, an `hmac` too.
 * - Fail closed: a failed write rejects the appends with `upstream_unavailable` and makes
 *   `healthy()` false; a watcher notices when the path stops naming the open file (removed,
 *   replaced, its folder gone) and retries until the file can be written again, then writes an
 *   `admin` record saying how long the trail was unavailable.
 */
export class AuditLog implements AuditSink {
  private fh: FileHandle | null;
  private dev: number;
  private ino: number;
  private size: number;
  private ok = true;
  private closed = false;
  private readonly queue: WriteQueue;
  private draining = false;
  /** The batch being drained must take the deferred records too (their delay ran out, a flush). */
  private drainAll = false;
  private probing = false;
  private tail: Promise<void> = Promise.resolve();
  /** Records the log writes about itself, ahead of the next batch. */
  private notes: AuditFields[] = [];
  private failedSince: string | null = null;
  private refused = 0;
  private timer: NodeJS.Timeout | undefined;
  private linger: NodeJS.Timeout | undefined;
  /** The batch timer of deferred records. */
  private delay: NodeJS.Timeout | undefined;
  private readonly mirror: AuditStreamMirror | undefined;
  private readonly now: () => number;
  private isoMs = Number.NaN;
  private iso = "";
  /** The HMAC key, as a KeyObject made once. */
  private readonly hmacKey: KeyObject | undefined;

  private constructor(
    private readonly file: string,
    private readonly sidecar: string,
    private prev: string,
    private seq: number,
    private readonly onRecord: ((rec: AuditRecord) => void) | undefined,
    private readonly o: AuditLogOptions,
    live: OpenFile,
  ) {
    this.fh = live.fh;
    this.dev = live.dev;
    this.ino = live.ino;
    this.size = live.size;
    this.now = o.now ?? Date.now;
    this.queue = new WriteQueue(o);
    this.hmacKey = o.hmacKey ? createSecretKey(o.hmacKey) : undefined;
    this.mirror = o.mirror ? new AuditStreamMirror(o.mirror, (err) => this.report(err, "mirror")) : undefined;
  }

  /**
   * Opens (or creates, 0600, in a 0700 folder) the live file and continues its chain from the
   * last record of the live file or, when that is empty, of the newest rotated file.
   * @throws Error when the file cannot be opened or its last record is not valid JSON.
   */
  static async open(
    file: string,
    sidecar: string,
    onRecord?: (rec: AuditRecord) => void,
    options: AuditLogOptions = {},
  ): Promise<AuditLog> {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const dropped = await dropTornTail(file);
    let last: AuditRecord | null;
    try {
      last = await lastRecordOfSet(file);
    } catch {
      throw new Error(
        `the last record of ${file} is not valid JSON; check the trail with 'leasehold audit verify'`,
      );
    }
    if (last && (typeof last.hash !== "string" || !Number.isInteger(last.seq))) {
      throw new Error(
        `the last line of ${file} is not an audit record; check it with 'leasehold audit verify'`,
      );
    }
    const live = await openLive(file);
    const log = new AuditLog(
      file,
      sidecar,
      last?.hash ?? GENESIS,
      last ? last.seq + 1 : 0,
      onRecord,
      options,
      live,
    );
    if (dropped > 0) {
      log.notes.push({
        event: "admin",
        scope: "audit_recovered",
        reason: `an incomplete record of ${dropped} bytes, cut off by a crash before it was acknowledged, was dropped at start`,
      });
      await log.exclusive(async () => void (await log.writeBatch([])));
    }
    const every = options.watchIntervalMs ?? DEFAULT_WATCH_MS;
    if (every > 0) {
      log.timer = setInterval(() => log.probe(), every);
      log.timer.unref();
    }
    return log;
  }

  /** False while the file cannot be written; checkouts are then refused (fail closed). */
  healthy(): boolean {
    return this.ok;
  }

  /**
   * Appends one record; resolves once it is on disk. Rejects with `upstream_unavailable` when
   * the file cannot be written (the caller must then not act unaudited).
   */
  append<E extends AuditEvent>(fields: AuditFields<E>, options?: AppendOptions): Promise<void> {
    if (this.closed) {
      return Promise.reject(new LeaseholdError("upstream_unavailable", "the audit log is closed"));
    }
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => (err ? reject(err) : resolve());
      this.queue.pushAwaited(fields, new Date(this.now()).toISOString(), done);
      if (!options?.withNext) this.kick();
      else this.linger ??= setTimeout(() => this.kick(), this.o.lingerMs ?? DEFAULT_LINGER_MS);
    });
  }

  /**
   * Queues a record nobody awaits (a listener's statement record) and returns at once: it is
   * written with the next batch, at most `batchDelayMs` (plus one write) later. `done` is told
   * once, when the record is on disk (no argument) or was refused (the error). Returns "queued",
   * "dropped" (the queue is full: counted, `done` never called) or "refused" (the log is closed).
   */
  appendDeferred(fields: AuditFields | TemplatedFields, done?: (err?: Error) => void): AppendOutcome {
    if (this.closed) return "refused";
    if (!this.queue.pushDeferred(fields, this.isoNow(), done)) return "dropped";
    if (this.queue.full()) this.kick();
    else if (!this.draining) this.armDelay();
    return "queued";
  }

  /** The time now as ISO 8601, made once per millisecond (statements come several a millisecond). */
  private isoNow(): string {
    const ms = this.now();
    if (ms !== this.isoMs) {
      this.isoMs = ms;
      this.iso = new Date(ms).toISOString();
    }
    return this.iso;
  }

  /** Deferred records dropped since the log was opened (the queue was full). */
  droppedRecords(): number {
    return this.queue.droppedTotal;
  }

  /** Writes the records appended `withNext`, and the deferred ones, now. */
  flush(): void {
    if (this.queue.length > 0 && !this.closed) this.kick(true);
  }

  /** Writes what is queued, stops the watcher, waits for the stream mirror, closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    if (this.queue.length > 0 || this.queue.dropped > 0) this.kick(true);
    await this.tail;
    await this.mirror?.drain();
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
  }

  private report(err: Error, where: AuditErrorPlace): void {
    try {
      this.o.onError?.(err, where);
    } catch {
      // a reporting hook must not break the log
    }
  }

  /** Runs file work one piece at a time. */
  private exclusive(fn: () => Promise<void>): Promise<void> {
    const p = this.tail.then(fn);
    this.tail = p.catch(() => undefined);
    return p;
  }

  private armDelay(): void {
    this.delay ??= setTimeout(() => {
      this.delay = undefined;
      this.kick(true);
    }, this.o.batchDelayMs ?? DEFAULT_BATCH_DELAY_MS);
  }

  /**
   * Whether the queue must be written now: an awaited record waits, a batch is full, the
   * deferred records' delay ran out (`all`), or the log is closing.
   */
  private due(all: boolean): boolean {
    const q = this.queue;
    if (q.length === 0) return q.dropped > 0 && (all || this.closed);
    return all || this.closed || q.awaited > 0 || q.full();
  }

  /** Writes batches while one is due; deferred records left over wait for their delay. */
  private kick(all = false): void {
    clearTimeout(this.linger);
    this.linger = undefined;
    if (all) {
      clearTimeout(this.delay);
      this.delay = undefined;
    }
    if (this.draining) {
      this.drainAll ||= all;
      return;
    }
    this.draining = true;
    this.drainAll = all;
    void this.exclusive(async () => {
      try {
        let ok = true;
        // After a failed write, only batches that refuse their records (and so end) go on.
        while (this.due(this.drainAll) && (ok || this.queue.length > 0)) {
          const batch = this.queue.take();
          if (this.queue.length === 0) this.drainAll = false;
          ok = await this.writeBatch(batch);
        }
      } finally {
        this.draining = false;
        if (this.queue.awaited > 0 && !this.closed) this.kick();
        else if (this.queue.deferred > 0 && !this.closed) this.armDelay();
      }
    });
  }

  /** The watcher: checks the path (and, after a failure, tries to write again). */
  private probe(): void {
    if (this.probing || this.closed) return;
    this.probing = true;
    void this.exclusive(async () => void (await this.writeBatch([]))).finally(() => {
      this.probing = false;
    });
  }

  /**
   * Makes sure `fh` is the file the path names now; reopens it when the path was moved, replaced
   * or removed. Returns a note to write when the chain continues in a different file.
   */
  private async ensureFile(): Promise<AuditFields | null> {
    if (this.fh) {
      let same = false;
      let size = this.size;
      try {
        const st = await stat(this.file);
        same = st.dev === this.dev && st.ino === this.ino;
        size = st.size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
      if (same && size === this.size) return null;
      if (same) {
        // Someone else wrote to (or cut) the file: say so, and keep appending after it. The chain
        // still links to this log's last record, so `audit verify` shows where the file was touched.
        const expected = this.size;
        this.size = size;
        return {
          event: "admin",
          scope: "audit_foreign_write",
          reason: `the audit file was changed outside this log (expected ${expected} bytes, found ${size}): another writer or an edit`,
        };
      }
      const old = this.fh;
      this.fh = null;
      await old.close().catch(() => undefined);
    }
    // No mkdir here: a folder that vanished (an unmounted volume) must not be silently recreated.
    const live = await openLive(this.file);
    this.fh = live.fh;
    this.dev = live.dev;
    this.ino = live.ino;
    this.size = live.size;
    if (live.size > 0) {
      const last = await lastRecordOf(this.file).catch(() => null);
      if (last?.hash === this.prev) return null;
    }
    return {
      event: "admin",
      scope: "audit_reopened",
      reason: "the audit file was moved, replaced or removed while in use; this file continues the chain",
    };
  }

  /** Moves the live file to `<file>.<n>` and starts a new one; the chain continues in it. */
  private async rotate(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
    await rename(this.file, await nextRotatedPath(this.file));
    const live = await openLive(this.file);
    this.fh = live.fh;
    this.dev = live.dev;
    this.ino = live.ino;
    this.size = live.size;
  }

  /** Hands written records to the hook and the stream; neither may undo or fail the write. */
  private afterWrite(records: AuditRecord[], buf: Buffer): void {
    for (const r of records) {
      try {
        this.onRecord?.(r);
      } catch (err) {
        this.report(asError(err), "hook");
      }
    }
    try {
      this.mirror?.publish(records, buf);
    } catch (err) {
      this.report(asError(err), "mirror");
    }
  }

  private async writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
    let off = 0;
    while (off < buf.length) {
      const { bytesWritten } = await fh.write(buf, off, buf.length - off);
      off += bytesWritten;
    }
  }

  /** The log's own records ahead of a batch: recovered after a failure, reopened, dropped records. */
  private ownRecords(time: string, kept: readonly AuditFields[], dropped: number): AuditFields[] {
    const own: AuditFields[] = [];
    if (!this.ok) {
      own.push({
        event: "admin",
        scope: "audit_recovered",
        reason: `the audit file could not be written from ${this.failedSince ?? time} to ${time}; ${this.refused} record(s) were refused meanwhile`,
      });
    }
    own.push(...kept);
    if (dropped > 0) {
      own.push({
        event: "admin",
        scope: "audit_dropped",
        dropped,
        reason: `${dropped} statement record(s) were dropped before this one: the queue of records waiting to be written was full`,
      });
    }
    return own;
  }

  /**
   * Seals records after the chain's head; returns them, their lines as one buffer (each line ends
   * in a newline), and the new head.
   */
  private seal(items: ReadonlyArray<{ fields: AuditFields | TemplatedFields; time: string }>) {
    const records: AuditRecord[] = [];
    const sealed: SealedRecord[] = [];
    let prev = this.prev;
    let seq = this.seq;
    let size = 0;
    for (const item of items) {
      const ctx = { time: item.time, sidecar: this.sidecar, seq, prev, hmacKey: this.hmacKey };
      const f = item.fields;
      const s = f instanceof TemplatedFields ? f.template.seal(f.values, ctx) : sealLine(f, ctx);
      sealed.push(s);
      records.push(s.record);
      // The tail takes the place of the closing brace; it and the newline are ASCII.
      size += Buffer.byteLength(s.canonical, "utf8") - 1 + s.tail.length + 1;
      prev = s.record.hash;
      seq += 1;
    }
    // Each piece written straight into one buffer: no line, nor the batch's text, is ever built as
    // a string (joining them cost more than sealing).
    const buf = Buffer.allocUnsafe(size);
    let at = 0;
    for (const s of sealed) {
      at += buf.write(s.canonical, at, "utf8");
      // The tail takes the place of the canonical JSON's closing brace.
      at += buf.write(s.tail, at - 1, "latin1") - 1;
      buf[at++] = 0x0a;
    }
    // Never write a byte of the uninitialised buffer.
    if (at !== size) throw new Error(`an audit batch came to ${at} bytes, not the ${size} measured`);
    return { records, buf, prev, seq };
  }

  /**
   * Writes the log's own records and a batch as one write + one fdatasync; tells every record of
   * the batch how it went. False when the write failed.
   */
  private async writeBatch(batch: Pending[]): Promise<boolean> {
    const time = new Date(this.now()).toISOString();
    const dropped = this.queue.dropped;
    this.queue.dropped = 0;
    let kept: AuditFields[] = [];
    let wrote = false;
    try {
      const reopened = await this.ensureFile();
      kept = reopened ? [reopened, ...this.notes.splice(0)] : this.notes.splice(0);
      const own = this.ownRecords(time, kept, dropped);
      if (own.length === 0 && batch.length === 0) return true;
      const items: Array<{ fields: AuditFields | TemplatedFields; time: string }> = own.map((fields) => ({
        fields,
        time,
      }));
      for (const p of batch) items.push({ fields: p.fields, time: p.time });
      const { records, buf, prev, seq } = this.seal(items);
      const max = this.o.maxBytes ?? 0;
      if (max > 0 && this.size > 0 && this.size + buf.length > max) await this.rotate();
      const fh = this.fh;
      if (!fh) throw new Error("the audit file is not open");
      wrote = true;
      await this.writeAll(fh, buf);
      await fh.datasync();
      this.size += buf.length;
      this.prev = prev;
      this.seq = seq;
      this.ok = true;
      this.failedSince = null;
      this.refused = 0;
      for (const p of batch) p.done?.();
      this.afterWrite(records, buf);
      return true;
    } catch (err) {
      // A partial line must not stay in the file: cut it back to the last whole record.
      if (wrote && this.fh) await this.fh.truncate(this.size).catch(() => undefined);
      this.notes.unshift(...kept);
      this.queue.dropped += dropped;
      if (this.ok) this.report(asError(err), "write");
      this.ok = false;
      this.failedSince ??= time;
      this.refused += batch.length;
      const refusal = new LeaseholdError(
        "upstream_unavailable",
        "the audit log cannot be written; the action was refused",
        { detail: asError(err).message, cause: err },
      );
      for (const p of batch) p.done?.(refusal);
      return false;
    }
  }
}
