import { createHash, createHmac, pbkdf2, randomBytes } from "node:crypto";
import { promisify } from "node:util";

const pbkdf2Async = promisify(pbkdf2);

/** PostgreSQL's defaults (scram_iterations, SCRAM_DEFAULT_SALT_LEN). */
const DEFAULT_ITERATIONS = 4096;
const SALT_BYTES = 16;

export interface ScramVerifierOptions {
  /** Fixed salt, for comparing with a verifier the server computed. @default 16 random bytes */
  salt?: Buffer;
  /** @default 4096 */
  iterations?: number;
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677 keys, in the
 * server's `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` text form).
 * Sent in `ALTER ROLE ... PASSWORD '<verifier>'`, the server stores it as is, so the
 * plaintext never reaches the server, its statement log or pg_stat_statements.
 *
 * The password is used as its UTF-8 bytes. PostgreSQL first applies SASLprep, which is the
 * identity for printable ASCII (0x20-0x7E); callers must only pass such passwords
 * (leasehold generates them), or logins through libpq could disagree.
 */
export async function scramSha256Verifier(
  password: string,
  opts: ScramVerifierOptions = {},
): Promise<string> {
  const salt = opts.salt ?? randomBytes(SALT_BYTES);
  const iterations = opts.iterations ?? DEFAULT_ITERATIONS;
  const salted = await pbkdf2Async(Buffer.from(password, "utf8"), salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}
