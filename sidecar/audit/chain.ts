import { createHmac, hash, type KeyObject, timingSafeEqual } from "node:crypto";
import { canonicalJson } from "./canonical.js";
import { scrubValue } from "./scrub.js";
import type { AuditFields, AuditRecord } from "./types.js";

/** The `prev` of the first record of a chain. */
export const GENESIS = "0".repeat(64);

/** Fields the log sets itself; a caller's values for them are dropped. */
export const RESERVED: ReadonlySet<string> = new Set(["time", "sidecar", "seq", "prev", "hash", "hmac"]);

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

/** The last record's keys as they came, and sorted: records of one kind come with the same keys. */
let lastKeys: readonly string[] = [];
let lastSorted: readonly string[] = [];
/** Whether `lastSorted` keeps its order in an object (no key is integer-like). */
let lastOrdered = true;

/** `keys` sorted, without sorting again keys just sorted; sets `lastOrdered`. */
function sortedKeys(keys: readonly string[]): readonly string[] {
  if (keys.length === lastKeys.length && keys.every((k, i) => k === lastKeys[i])) return lastSorted;
  lastKeys = keys;
  lastSorted = [...keys].sort();
  // An integer-like key goes first in any object, whatever its insertion order.
  lastOrdered = lastSorted.every((k) => {
    const c = k.charCodeAt(0);
    return !(c >= 48 && c <= 57);
  });
  return lastSorted;
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

/**
 * HMAC-SHA256 (hex) of a record hash under the audit key (a KeyObject made once is cheaper per
 * record than the key's bytes).
 */
export function recordHmac(key: Uint8Array | KeyObject, hash: string): string {
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
  readonly hmacKey?: Uint8Array | KeyObject | undefined;
}

/**
 * The record as written: the object (for hooks), and its line in two pieces that are never
 * joined into one string (the log writes them into its batch buffer): the canonical JSON that was
 * hashed, whose last character is its closing brace, and the `tail` that takes that brace's place.
 */
export interface SealedRecord {
  readonly record: AuditRecord;
  readonly canonical: string;
  /** `,"hash":"…"` (and `,"hmac":"…"`), then `}`: ASCII only. */
  readonly tail: string;
}

/**
 * Builds the record that is written: the caller's fields (undefined ones dropped, reserved ones
 * ignored, strings scrubbed of anything shaped like a JWT: `scrubText`; `agent_chain` stated as
 * `[]` when there is an agent and no chain), then the chain fields, the hash and, with a key,
 * the hmac.
 */
export function sealRecord(fields: AuditFields, ctx: SealContext): AuditRecord {
  return sealLine(fields, ctx).record;
}

/**
 * `sealRecord`, with the line to write. The line is the canonical JSON that was hashed (keys
 * sorted) with `hash` and `hmac` added at its end, so a record is serialised once: a
 * reader parses it back to the same record, and `hashRecord` of that gives `hash` again.
 */
export function sealLine(fields: AuditFields, ctx: SealContext): SealedRecord {
  const src = fields as unknown as Record<string, unknown>;
  const keys: string[] = [];
  let simple = true;
  for (const k of Object.keys(src)) {
    const v = src[k];
    if (v === undefined || RESERVED.has(k)) continue;
    keys.push(k);
    if (simple && !survivesJson(v)) simple = false;
  }
  const defaultChain = src.agent !== undefined && src.agent_chain === undefined;
  if (defaultChain) keys.push("agent_chain");
  keys.push("time", "sidecar", "seq", "prev");
  const sorted = sortedKeys(keys);
  // Built in sorted key order: then JSON.stringify writes the canonical form in one native call.
  let body: Record<string, unknown> = {};
  for (const k of sorted) {
    if (k === "time") body.time = ctx.time;
    else if (k === "sidecar") body.sidecar = ctx.sidecar;
    else if (k === "seq") body.seq = ctx.seq;
    else if (k === "prev") body.prev = ctx.prev;
    else if (defaultChain && k === "agent_chain") body.agent_chain = [];
    else body[k] = scrubValue(src[k]);
  }
  let canonical: string;
  if (simple && lastOrdered) canonical = JSON.stringify(body);
  else {
    // Hash exactly what a reader will parse back from the line (no Date, no undefined in arrays).
    if (!simple) body = JSON.parse(JSON.stringify(body)) as Record<string, unknown>;
    canonical = canonicalJson(body);
  }
  return sealed(body, canonical, ctx.hmacKey);
}

/**
 * The record sealed: `hash` (and with a key `hmac`) of its canonical JSON set on `body`, and the
 * line's tail that takes the canonical JSON's closing brace.
 */
export function sealed(
  body: Record<string, unknown>,
  canonical: string,
  hmacKey: Uint8Array | KeyObject | undefined,
): SealedRecord {
  const digest = hash("sha256", canonical, "hex");
  body.hash = digest;
  let tail: string;
  if (hmacKey) {
    const mac = recordHmac(hmacKey, digest);
    body.hmac = mac;
    tail = `,"hash":"${digest}","hmac":"${mac}"}`;
  } else tail = `,"hash":"${digest}"}`;
  return { record: body as unknown as AuditRecord, canonical, tail };
}
