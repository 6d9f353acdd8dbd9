import { createHash } from "node:crypto";
import { mkdir, open, readFile, stat } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { canonicalJson } from "./canonical.js";
import type { AuditFields, AuditRecord, AuditSink } from "./types.js";

export const GENESIS = "0".repeat(64);

export function hashRecord(rec: Omit<AuditRecord, "hash">): string {
  return createHash("sha256").update(canonicalJson(rec)).digest("hex");
}

async function lastRecord(file: string): Promise<AuditRecord | null> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    return null;
  }
  if (size === 0) return null;
  const fh = await open(file, "r");
  try {
    const len = Math.min(size, 256 * 1024);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    const lines = buf
      .toString("utf8")
      .split("\n")
      .filter((l) => l.trim() !== "");
    const last = lines.at(-1);
    return last ? (JSON.parse(last) as AuditRecord) : null;
  } finally {
    await fh.close();
  }
}

/**
 * Append-only, hash-chained JSONL audit file. Appends are serialised and each is flushed
 * to disk (fdatasync) before the promise resolves; a failed write marks the log unhealthy.
 */
export class AuditLog implements AuditSink {
  private chain: Promise<void> = Promise.resolve();
  private ok = true;

  private constructor(
    private readonly fh: FileHandle,
    private readonly sidecar: string,
    private prev: string,
    private seq: number,
    private readonly onRecord?: (rec: AuditRecord) => void,
  ) {}

  static async open(file: string, sidecar: string, onRecord?: (rec: AuditRecord) => void): Promise<AuditLog> {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const last = await lastRecord(file);
    const fh = await open(file, "a", 0o600);
    return new AuditLog(fh, sidecar, last?.hash ?? GENESIS, last ? last.seq + 1 : 0, onRecord);
  }

  healthy(): boolean {
    return this.ok;
  }

  append(fields: AuditFields): Promise<void> {
    const run = async () => {
      const base = {
        ...fields,
        time: new Date().toISOString(),
        sidecar: this.sidecar,
        seq: this.seq,
        prev: this.prev,
      };
      const rec: AuditRecord = { ...base, hash: hashRecord(base) };
      try {
        await this.fh.write(`${JSON.stringify(rec)}\n`);
        await this.fh.datasync();
        this.ok = true;
      } catch (err) {
        this.ok = false;
        throw err;
      }
      this.prev = rec.hash;
      this.seq += 1;
      this.onRecord?.(rec);
    };
    const p = this.chain.then(run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    await this.chain;
    await this.fh.close();
  }
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly records: number;
  /** 1-based line of the first broken record. */
  readonly line?: number;
  readonly problem?: string;
}

/** Checks every record's hash and its link to the one before. */
export async function verifyAuditFile(file: string): Promise<VerifyResult> {
  const text = await readFile(file, "utf8");
  const lines = text.split("\n");
  let prev = GENESIS;
  let count = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === "") continue;
    let rec: AuditRecord;
    try {
      rec = JSON.parse(line) as AuditRecord;
    } catch {
      return { ok: false, records: count, line: i + 1, problem: "not valid JSON" };
    }
    const { hash, ...rest } = rec;
    if (rec.prev !== prev)
      return { ok: false, records: count, line: i + 1, problem: "chain broken (prev mismatch)" };
    if (hashRecord(rest) !== hash)
      return { ok: false, records: count, line: i + 1, problem: "hash mismatch" };
    prev = hash;
    count++;
  }
  return { ok: true, records: count };
}
