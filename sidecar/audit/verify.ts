import { GENESIS, hashRecord, hmacMatches } from "./chain.js";
import { linesForward } from "./file-lines.js";

export interface VerifyOptions {
  /** Also check every record's `hmac` with this key; a record without one fails. */
  readonly hmacKey?: Uint8Array | undefined;
  /**
   * Accept a first record that continues an older chain (its older files were archived):
   * its `prev` and `seq` are taken as given instead of requiring the genesis record.
   */
  readonly partial?: boolean | undefined;
}

export interface VerifyResult {
  readonly ok: boolean;
  /** Records found intact (before the first broken one). */
  readonly records: number;
  /** The files checked, in chain order. */
  readonly files?: readonly string[];
  /** The file of the first broken record. */
  readonly file?: string;
  /** 1-based line of the first broken record in `file`. */
  readonly line?: number;
  /** `seq` of the first broken record, when it could be read. */
  readonly seq?: number;
  readonly problem?: string;
  /** True when every record's hmac was checked with a key. */
  readonly hmac?: boolean;
  /** The last intact record: keep it to detect a later truncation of the trail. */
  readonly head?: { readonly seq: number; readonly hash: string };
}

/** Checks records one after another against the chain; holds the position between calls. */
export class ChainChecker {
  private prev = GENESIS;
  private seq = 0;
  private started = false;
  count = 0;
  head: { seq: number; hash: string } | undefined;

  constructor(private readonly opts: VerifyOptions = {}) {}

  /** Null when `value` is the next record of the chain, else what is wrong with it. */
  check(value: unknown): { problem: string; seq?: number } | null {
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return { problem: "not an audit record (not a JSON object)" };
    }
    const rec = value as Record<string, unknown>;
    const { hash, prev, seq } = rec;
    if (
      typeof hash !== "string" ||
      typeof prev !== "string" ||
      typeof seq !== "number" ||
      !Number.isInteger(seq)
    ) {
      return { problem: "not an audit record (hash, prev or seq missing)" };
    }
    if (hashRecord(rec) !== hash) return { problem: "hash mismatch: the record was changed", seq };
    if (!this.started && this.opts.partial) {
      this.prev = prev;
      this.seq = seq;
    }
    if (prev !== this.prev) {
      if (!this.started) {
        return {
          problem:
            "chain broken: the first record does not start the chain (prev is not the genesis hash); an older file is missing or records were removed",
          seq,
        };
      }
      return {
        problem:
          seq === this.seq
            ? "chain broken: prev is not the hash of the record before it"
            : `chain broken: seq ${seq} follows seq ${this.seq - 1}; a record was removed, inserted or moved`,
        seq,
      };
    }
    if (seq !== this.seq) return { problem: `seq ${seq} where ${this.seq} was expected`, seq };
    if (this.opts.hmacKey && !hmacMatches(this.opts.hmacKey, hash, rec.hmac)) {
      return {
        problem:
          rec.hmac === undefined
            ? "hmac missing: the record was not written with the audit key"
            : "hmac mismatch: the record was not written with this audit key",
        seq,
      };
    }
    this.started = true;
    this.prev = hash;
    this.seq = seq + 1;
    this.count++;
    this.head = { seq, hash };
    return null;
  }
}

/**
 * Checks a chain spread over files given in chain order (oldest first, live file last): every
 * line is a complete JSON record, every hash matches its record, every `prev` is the hash of the
 * record before (across file boundaries), `seq` counts up without gaps, and, with a key, every
 * `hmac` matches. Reports the first broken record by file and line.
 */
export async function verifyAuditFiles(
  files: readonly string[],
  opts: VerifyOptions = {},
): Promise<VerifyResult> {
  const checker = new ChainChecker(opts);
  const hmac = opts.hmacKey !== undefined;
  const base = { files: [...files], hmac };
  for (const file of files) {
    try {
      for await (const line of linesForward(file)) {
        const broken = (problem: string, seq?: number): VerifyResult => ({
          ...base,
          ok: false,
          records: checker.count,
          file,
          line: line.number,
          ...(seq === undefined ? {} : { seq }),
          problem,
        });
        if (!line.complete) return broken("incomplete last record (no newline): a write was cut off");
        if (line.text === "") return broken("empty line");
        let value: unknown;
        try {
          value = JSON.parse(line.text);
        } catch {
          return broken("not valid JSON");
        }
        const bad = checker.check(value);
        if (bad) return broken(bad.problem, bad.seq);
      }
    } catch (err) {
      return {
        ...base,
        ok: false,
        records: checker.count,
        file,
        problem: `cannot read the file (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      };
    }
  }
  return { ...base, ok: true, records: checker.count, ...(checker.head ? { head: checker.head } : {}) };
}

/** {@link verifyAuditFiles} for a single file. */
export function verifyAuditFile(file: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  return verifyAuditFiles([file], opts);
}
