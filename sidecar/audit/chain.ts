import { createHmac, hash, timingSafeEqual } from "node:crypto";
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
  return hashBody(withoutSeal(rec));
}

/** SHA-256 (hex) of a record body that has no `hash` nor `hmac` yet. */
function hashBody(body: object): string {
  return hash("sha256", canonicalJson(body), "hex");
}

/** The last body's keys as they came, and sorted: records of one kind come with the same keys. */
let lastKeys: readonly string[] = [];
let lastSorted: readonly string[] = [];

/** `Object.keys(body).sort()`, without sorting again keys just sorted. */
function sortedKeys(body: Record<string, unknown>): readonly string[] {
  const keys = Object.keys(body);
  if (keys.length === lastKeys.length && keys.every((k, i) => k === lastKeys[i])) return lastSorted;
  lastKeys = keys;
  lastSorted = [...keys].sort();
  return lastSorted;
}

/**
 * The canonical JSON of a body whose values all survive JSON unchanged (see survivesJson) and
 * whose keys are not array indexes: JSON.stringify of a copy with its keys in sorted order, the
 * same text as canonicalJson, in one native call. Null when a key would not keep its place.
 */
function simpleCanonical(body: Record<string, unknown>): string | null {
  const keys = sortedKeys(body);
  const sorted: Record<string, unknown> = {};
  for (const k of keys) {
    // An integer-like key goes first in any object, whatever its insertion order.
    const c = k.charCodeAt(0);
    if (c >= 48 && c <= 57) return null;
    sorted[k] = body[k];
  }
  return JSON.stringify(sorted);
}

/**
 * Whether JSON.stringify then JSON.parse gives `v` back unchanged: a string, a boolean, a finite
 * number other than -0, or an array of strings. Anything else (a nested object, a Date, an
 * undefined inside an array) takes the round trip.
 */
function survivesJson(v: unknown): boolean {
  switch (typeof v) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(v) && !Object.is(v, -0);
    default:
      return Array.isArray(v) && v.every((x) => typeof x === "string");
  }
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
  let simple = true;
  for (const k of Object.keys(fields)) {
    const v = (fields as unknown as Record<string, unknown>)[k];
    if (v === undefined || RESERVED.has(k)) continue;
    body[k] = v;
    if (simple && !survivesJson(v)) simple = false;
  }
  body.sidecar = ctx.sidecar;
  body.seq = ctx.seq;
  body.prev = ctx.prev;
  // Hash exactly what a reader will parse back from the line (no Date, no undefined in arrays):
  // a body of plain values is that already; any other takes the JSON round trip.
  const plain = simple ? body : (JSON.parse(JSON.stringify(body)) as Record<string, unknown>);
  const canonical = simple ? simpleCanonical(plain) : null;
  const digest = canonical === null ? hashBody(plain) : hash("sha256", canonical, "hex");
  plain.hash = digest;
  if (ctx.hmacKey) plain.hmac = recordHmac(ctx.hmacKey, digest);
  return plain as unknown as AuditRecord;
}
