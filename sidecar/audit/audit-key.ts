import { randomBytes } from "node:crypto";
import { open, readFile, stat } from "node:fs/promises";

/** Shortest accepted audit key, bytes. */
export const MIN_AUDIT_KEY_BYTES = 32;

/**
 * Reads the audit HMAC key: the file's bytes without trailing whitespace, at least 32 of them.
 * The file must be readable by its owner only (0600 or stricter), like every secret leasehold keeps.
 * @throws Error naming the file and the fix.
 */
export async function loadAuditKey(file: string): Promise<Buffer> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(file);
  } catch (err) {
    throw new Error(`cannot read audit key ${file}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
  }
  const mode = st.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new Error(
      `audit key ${file} has mode ${mode.toString(8).padStart(4, "0")}; it must be readable by its owner only (chmod 600 ${file})`,
    );
  }
  const raw = await readFile(file);
  let end = raw.length;
  while (end > 0 && [0x0a, 0x0d, 0x20, 0x09].includes(raw[end - 1] as number)) end--;
  const key = raw.subarray(0, end);
  if (key.length < MIN_AUDIT_KEY_BYTES) {
    throw new Error(`audit key ${file} is too short: at least ${MIN_AUDIT_KEY_BYTES} bytes are required`);
  }
  return Buffer.from(key);
}

/**
 * Creates a new audit key file (32 random bytes as 64 hex digits, mode 0600); never replaces one.
 * @throws Error with code EEXIST when the file exists.
 */
export async function createAuditKey(file: string): Promise<void> {
  const fh = await open(file, "wx", 0o600);
  try {
    await fh.chmod(0o600);
    await fh.writeFile(`${randomBytes(32).toString("hex")}\n`, "utf8");
    await fh.sync();
  } finally {
    await fh.close();
  }
}
