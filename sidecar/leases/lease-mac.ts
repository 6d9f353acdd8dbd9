import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { LeaseholdError } from "../errors.js";
import type { SecretStore } from "../secrets/index.js";
import type { LeaseState } from "./types.js";

/**
 * The fields of a lease record that grant access. Redis is a cache, not a root of trust: whoever
 * can write it must not be able to extend a lease, revive an ended one, move it to another agent,
 * account or resource, or forge one, so these fields are bound by an HMAC keyed by a Vault secret.
 */
export interface LeaseMacFields {
  /** The id and resource the record was looked up by (its Redis key), not what it claims. */
  readonly id: string;
  readonly resource: string;
  readonly agent: string;
  readonly account: string;
  readonly state: LeaseState;
  readonly expires_at: number;
  readonly max_expires_at: number;
  /** The lease's spec exactly as stored (task, intent, approver, chain, attributes, the caller bound at checkout). */
  readonly spec: string;
}

/** Bumped when the encoding changes: a record signed under another version fails verification. */
const VERSION = "leasehold-lease-mac-v1";

/** The key's length in bytes (HMAC-SHA256's block-size-safe 256 bits). */
export const LEASE_MAC_KEY_BYTES = 32;

/** Where the cluster's lease MAC key lives under the Vault prefix. */
export const LEASE_MAC_KEY_PATH = ["cluster", "lease-mac-key"] as const;

/**
 * HMAC-SHA256 of the fields, base64url. The encoding is a JSON array, so no two different
 * records share one input (no ambiguous concatenation).
 */
export function signLease(key: Uint8Array, f: LeaseMacFields): string {
  const canonical = JSON.stringify([
    VERSION,
    f.id,
    f.resource,
    f.agent,
    f.account,
    f.state,
    f.expires_at,
    f.max_expires_at,
    f.spec,
  ]);
  return createHmac("sha256", key).update(canonical).digest("base64url");
}

/**
 * {@link signLease} of one lease for each of `accounts` (the checkout's candidates): the same MACs,
 * with the encoding of the fields they share (above all the spec, escaped once more inside the
 * array) built once. A JSON array is its elements' JSON joined by commas, so the input of each is
 * exactly signLease's.
 */
export function signLeaseForAccounts(
  key: Uint8Array,
  f: Omit<LeaseMacFields, "account">,
  accounts: readonly string[],
): string[] {
  const head = JSON.stringify([VERSION, f.id, f.resource, f.agent]).slice(0, -1);
  const tail = JSON.stringify([f.state, f.expires_at, f.max_expires_at, f.spec]).slice(1);
  return accounts.map((account) =>
    createHmac("sha256", key)
      .update(`${head},${JSON.stringify(account)},${tail}`)
      .digest("base64url"),
  );
}

/** True only when `mac` is the fields' MAC under `key` (constant-time compare); a missing MAC fails. */
export function verifyLease(key: Uint8Array, f: LeaseMacFields, mac: string | undefined): boolean {
  if (typeof mac !== "string" || mac === "") return false;
  const want = Buffer.from(signLease(key, f));
  const got = Buffer.from(mac);
  return got.length === want.length && timingSafeEqual(got, want);
}

function decodeKey(data: { key?: unknown } | undefined): Buffer {
  const key = typeof data?.key === "string" ? Buffer.from(data.key, "base64") : Buffer.alloc(0);
  if (key.length !== LEASE_MAC_KEY_BYTES) {
    throw new LeaseholdError("internal", "the lease MAC key in Vault is malformed", { retryable: false });
  }
  return key;
}

/**
 * The cluster's lease MAC key: read from Vault, or created there on first start. Creation is a
 * create-only (cas=0) write, so sidecars starting together all end up with the winner's key.
 */
export async function loadLeaseMacKey(secrets: SecretStore): Promise<Buffer> {
  const found = await secrets.read<{ key?: unknown }>(LEASE_MAC_KEY_PATH);
  if (found) return decodeKey(found.data);
  const key = randomBytes(LEASE_MAC_KEY_BYTES);
  try {
    await secrets.write(LEASE_MAC_KEY_PATH, { key: key.toString("base64") }, 0);
    return key;
  } catch (err) {
    if (!(err instanceof LeaseholdError && err.code === "conflict")) throw err;
    const winner = await secrets.read<{ key?: unknown }>(LEASE_MAC_KEY_PATH);
    if (!winner) throw err;
    return decodeKey(winner.data);
  }
}
