import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { canonicalJson } from "./canonical.js";
import type { AuditFields, AuditRecord } from "./types.js";

/** The `prev` of the first record of a chain. */
export const GENESIS = "0".repeat(64);

/** Fields the log sets itself; a caller's values for them are dropped. */
const RESERVED = new Set(["time", "sidecar", "seq", "prev", "hash", "hmac"]);

function withoutSeal(rec: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rec)) if (k !== "hash" && k !== "hmac") out[k] = v;
  return out;
}

/** SHA-256 (hex) of the record's canonical JSON, leaving out its `hash` and `hmac` fields. */
export function hashRecord(rec: object): string {
  return createHash("sha256")
    .update(canonicalJson(withoutSeal(rec)))
    .digest("hex");
}

/** HMAC-SHA256 (hex) of a record hash under the audit key. */
export function recordHmac(key: Uint8Array, hash: string): string {
  return createHmac("sha256", key).update(hash).digest("hex");
}

/** Constant-time check of a record's `hmac` against the key. */
export function hmacMatches(key: Uint8Array, hash: string, hmac: unknown): boolean {
  if (typeof hmac !== "string" || !/^[0-9a-f]{64}$/.test(hmac)) return false;
  return timingSafeEqual(Buffer.from(recordHmac(key, hash), "hex"), Buffer.from(hmac, "hex"));
}

export interface SealContext {
  readonly time: string;
  readonly sidecar: string;
  readonly seq: number;
  readonly prev: string;
  readonly hmacKey?: Uint8Array | undefined;
}

/**
 * Builds the record that is written: the caller's fields (undefined ones dropped, reserved ones
 * ignored), then the chain fields, the hash and, with a key, the hmac.
 */
export function sealRecord(fields: AuditFields, ctx: SealContext): AuditRecord {
  const body: Record<string, unknown> = { time: ctx.time };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && !RESERVED.has(k)) body[k] = v;
  body.sidecar = ctx.sidecar;
  body.seq = ctx.seq;
  body.prev = ctx.prev;
  // Hash exactly what a reader will parse back from the line (no Date, no undefined in arrays).
  const plain = JSON.parse(JSON.stringify(body)) as Record<string, unknown>;
  const hash = hashRecord(plain);
  const rec = { ...plain, hash } as unknown as AuditRecord;
  return ctx.hmacKey ? { ...rec, hmac: recordHmac(ctx.hmacKey, hash) } : rec;
}
