import { mkdir, open, rename, stat, truncate } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { LeaseholdError } from "../errors.js";
import { lastRecordOf, lastRecordOfSet, nextRotatedPath } from "./audit-files.js";
import { AuditStreamMirror } from "./audit-mirror.js";
import { GENESIS, sealRecord } from "./chain.js";
import { scrubFields } from "./scrub.js";
import type {
  AppendOptions,
  AuditErrorPlace,
  AuditEvent,
  AuditFields,
  AuditLogOptions,
  AuditRecord,
  AuditSink,
} from "./types.js";

const DEFAULT_WATCH_MS = 1000;
const DEFAULT_LINGER_MS = 25;

interface Pending {
  readonly fields: AuditFields;
  readonly time: string;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

interface OpenFile {
  readonly fh: FileHandle;
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** Makes a new directory entry durable (the file's own fdatasync does not cover its name). */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Opens the live file for appending; refuses anything but a regular file. */
async function openLive(file: string): Promise<OpenFile> {
  const fh = await open(file, "a", 0o600);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new Error(`${file} is not a regular file`);
    if (st.size === 0) await syncDir(dirname(file));
    return { fh, dev: st.dev, ino: st.ino, size: st.size };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/**
 * Drops an incomplete last line (a write cut off by a crash: it was never acknowledged).
 * Returns how many bytes were dropped.
 */
async function dropTornTail(file: string): Promise<number> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    return 0;
  }
  if (size === 0) return 0;
  const fh = await open(file, "r");
  let keep = 0;
  try {
    const chunk = 64 * 1024;
    let pos = size;
    let found = false;
    while (pos > 0 && !found) {
      const len = Math.min(chunk, pos);
      pos -= len;
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, pos);
      const nl = buf.lastIndexOf(0x0a);
      if (nl !== -1) {
        keep = pos + nl + 1;
        found = true;
      }
    }
  } finally {
    await fh.close();
  }
  if (keep === size) return 0;
  await truncate(file, keep);
  return size - keep;
}

/**
 * Append-only, hash-chained JSONL audit file (DESIGN.md I6).
 *
 * - Appends are queued and written in batches (group commit): one write and one fdatasync per
 *   batch; an append resolves only once its record is on disk. A record appended `withNext`
 *   waits (at most `lingerMs`) for the next append and goes to disk in the same batch.
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
  private queue: Pending[] = [];
  private draining = false;
  private probing = false;
  private tail: Promise<void> = Promise.resolve();
  /** Records the log writes about itself, ahead of the next batch. */
  private notes: AuditFields[] = [];
  private failedSince: string | null = null;
  private refused = 0;
  private timer: NodeJS.Timeout | undefined;
  private linger: NodeJS.Timeout | undefined;
  private readonly mirror: AuditStreamMirror | undefined;
  private readonly now: () => number;

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
      await log.exclusive(() => log.writeBatch([]));
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
      this.queue.push({ fields, time: new Date(this.now()).toISOString(), resolve, reject });
      if (!options?.withNext) this.kick();
      else this.linger ??= setTimeout(() => this.kick(), this.o.lingerMs ?? DEFAULT_LINGER_MS);
    });
  }

  /** Writes the records appended `withNext` now, without waiting for a next one. */
  flush(): void {
    if (this.queue.length > 0 && !this.closed) this.kick();
  }

  /** Writes what is queued, stops the watcher, waits for the stream mirror, closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    if (this.queue.length > 0) this.kick();
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

  private kick(): void {
    clearTimeout(this.linger);
    this.linger = undefined;
    if (this.draining) return;
    this.draining = true;
    void this.exclusive(async () => {
      try {
        while (this.queue.length > 0) await this.writeBatch(this.queue.splice(0, this.queue.length));
      } finally {
        this.draining = false;
        if (this.queue.length > 0 && !this.closed) this.kick();
      }
    });
  }

  /** The watcher: checks the path (and, after a failure, tries to write again). */
  private probe(): void {
    if (this.probing || this.closed) return;
    this.probing = true;
    void this.exclusive(() => this.writeBatch([])).finally(() => {
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
  private afterWrite(records: AuditRecord[]): void {
    for (const r of records) {
      try {
        this.onRecord?.(r);
      } catch (err) {
        this.report(asError(err), "hook");
      }
    }
    try {
      this.mirror?.publish(records);
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

  /** Writes notes and a batch as one write + one fdatasync; settles every append in the batch. */
  private async writeBatch(batch: Pending[]): Promise<void> {
    const time = new Date(this.now()).toISOString();
    let kept: AuditFields[] = [];
    let wrote = false;
    try {
      const reopened = await this.ensureFile();
      kept = reopened ? [reopened, ...this.notes.splice(0)] : this.notes.splice(0);
      const own: AuditFields[] = [...kept];
      if (!this.ok) {
        own.unshift({
          event: "admin",
          scope: "audit_recovered",
          reason: `the audit file could not be written from ${this.failedSince ?? time} to ${time}; ${this.refused} record(s) were refused meanwhile`,
        });
      }
      const items = [
        ...own.map((fields) => ({ fields, time })),
        ...batch.map((p) => ({ fields: p.fields, time: p.time })),
      ];
      if (items.length === 0) return;
      const records: AuditRecord[] = [];
      let prev = this.prev;
      let seq = this.seq;
      for (const item of items) {
        const rec = sealRecord(scrubFields(item.fields), {
          time: item.time,
          sidecar: this.sidecar,
          seq,
          prev,
          hmacKey: this.o.hmacKey,
        });
        records.push(rec);
        prev = rec.hash;
        seq += 1;
      }
      const buf = Buffer.from(records.map((r) => `${JSON.stringify(r)}\n`).join(""), "utf8");
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
      for (const p of batch) p.resolve();
      this.afterWrite(records);
    } catch (err) {
      // A partial line must not stay in the file: cut it back to the last whole record.
      if (wrote && this.fh) await this.fh.truncate(this.size).catch(() => undefined);
      this.notes.unshift(...kept);
      if (this.ok) this.report(asError(err), "write");
      this.ok = false;
      this.failedSince ??= time;
      this.refused += batch.length;
      const refusal = new LeaseholdError(
        "upstream_unavailable",
        "the audit log cannot be written; the action was refused",
        { detail: asError(err).message, cause: err },
      );
      for (const p of batch) p.reject(refusal);
    }
  }
}
