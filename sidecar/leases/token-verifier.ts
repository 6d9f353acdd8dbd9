import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * A SCRAM-SHA-256 verifier (RFC 5802 / 7677) of a lease token, made at checkout for a lease whose
 * resource has a PostgreSQL listener: the listener proves the client knows the token without the
 * token crossing the wire. Values are base64, as SCRAM sends them.
 */
export interface ScramVerifier {
  readonly salt: string;
  readonly iterations: number;
  readonly storedKey: string;
  readonly serverKey: string;
  /**
   * The `kid` of the key that signed the token: a proof counts only while that key still
   * verifies tokens, as the token itself would (a key removed from the key file ends its leases'
   * SCRAM logins too).
   */
  readonly kid?: string | undefined;
}

/**
 * A listener's finding that its client knows the token of lease `leaseId` of `resource`: made
 * only by checking a SCRAM proof against the verifier stored, under its MAC, for that lease.
 */
export interface TokenProof {
  readonly kind: "scram";
  readonly leaseId: string;
  readonly resource: string;
  /** The verifier's `kid`: the signing key the token had, which must still be known. */
  readonly kid: string | undefined;
}

/** RFC 7677's minimum; the token is high-entropy, so more iterations would only cost clients time. */
export const SCRAM_ITERATIONS = 4096;

const hmac = (key: Buffer, data: string) => createHmac("sha256", key).update(data).digest();

/** The verifier of `secret` with a fresh salt; PBKDF2 runs on the thread pool. */
export async function scramVerifier(
  secret: string,
  kid?: string,
  iterations = SCRAM_ITERATIONS,
): Promise<ScramVerifier> {
  const salt = randomBytes(16);
  const salted = await new Promise<Buffer>((resolve, reject) =>
    pbkdf2(secret, salt, iterations, 32, "sha256", (err, key) => (err ? reject(err) : resolve(key))),
  );
  return {
    salt: salt.toString("base64"),
    iterations,
    storedKey: createHash("sha256").update(hmac(salted, "Client Key")).digest("base64"),
    serverKey: hmac(salted, "Server Key").toString("base64"),
    ...(kid === undefined ? {} : { kid }),
  };
}

const VERSION = "leasehold-scram-verifier-v2";

/**
 * The verifier's MAC under the cluster's lease MAC key, bound to the lease it was made for: a
 * Redis writer can neither plant a verifier of a password it knows nor move one to another lease.
 */
function verifierMac(key: Uint8Array, resource: string, id: string, v: ScramVerifier): string {
  return createHmac("sha256", key)
    .update(
      JSON.stringify([VERSION, resource, id, v.salt, v.iterations, v.storedKey, v.serverKey, v.kid ?? null]),
    )
    .digest("base64url");
}

/** The stored form: the verifier and its MAC, as JSON. */
export function sealVerifier(key: Uint8Array, resource: string, id: string, v: ScramVerifier): string {
  return JSON.stringify({ ...v, mac: verifierMac(key, resource, id, v) });
}

/** The verifier stored for `resource`/`id`, or undefined when it is missing, malformed or its MAC fails. */
export function openVerifier(
  key: Uint8Array,
  resource: string,
  id: string,
  stored: string | null | undefined,
): ScramVerifier | undefined {
  if (!stored) return undefined;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(stored) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const { salt, iterations, storedKey, serverKey, mac, kid } = parsed;
  if (
    typeof salt !== "string" ||
    typeof storedKey !== "string" ||
    typeof serverKey !== "string" ||
    typeof mac !== "string" ||
    typeof iterations !== "number" ||
    !Number.isInteger(iterations) ||
    iterations < 1 ||
    (kid !== undefined && typeof kid !== "string")
  ) {
    return undefined;
  }
  const v: ScramVerifier = { salt, iterations, storedKey, serverKey, ...(kid === undefined ? {} : { kid }) };
  const want = Buffer.from(verifierMac(key, resource, id, v));
  const got = Buffer.from(mac);
  return got.length === want.length && timingSafeEqual(got, want) ? v : undefined;
}
