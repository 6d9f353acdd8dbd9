import { DEFAULT_MAX_ROWS, MAX_ROWS_CAP } from "../schemas.js";

/** The most bytes of JSON a result holds (rows, entries, a reply) before it is cut. */
export const MAX_RESULT_BYTES = 64 * 1024;

/** Rows a call asked for, within the cap. */
export function rowLimit(asked: number | undefined): number {
  return Math.min(Math.max(1, asked ?? DEFAULT_MAX_ROWS), MAX_ROWS_CAP);
}

/**
 * A driver's value as JSON can carry it: dates as ISO strings, bytes as `\x…` hex, big integers
 * as strings, anything else as itself (objects recursively).
 */
export function jsonValue(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? String(v) : v.toISOString();
  if (Buffer.isBuffer(v)) return `\\x${v.toString("hex")}`;
  if (v instanceof Uint8Array) return `\\x${Buffer.from(v).toString("hex")}`;
  if (Array.isArray(v)) return v.map(jsonValue);
  if (typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, jsonValue(x)]),
    );
  }
  return v;
}

/**
 * Collects items up to `maxItems` and `maxBytes` of JSON: `push` answers false once the next
 * item did not fit (the result is then `truncated`).
 */
export class BoundedList<T> {
  readonly items: T[] = [];
  truncated = false;
  private bytes = 0;

  constructor(
    private readonly maxItems: number,
    private readonly maxBytes = MAX_RESULT_BYTES,
  ) {}

  push(item: T): boolean {
    if (this.truncated) return false;
    const size = Buffer.byteLength(JSON.stringify(item) ?? "null") + 1;
    if (this.items.length >= this.maxItems || this.bytes + size > this.maxBytes) {
      this.truncated = true;
      return false;
    }
    this.items.push(item);
    this.bytes += size;
    return true;
  }
}

/** Replaces every occurrence of each secret in `text` (a driver's error may quote its input). */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.replaceAll(s, "[redacted]");
  return out;
}
