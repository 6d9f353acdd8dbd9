import { randomBytes } from "node:crypto";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

/** Reads the admin token file, creating it (0600, random 256 bits) on first start. */
export async function loadAdminToken(file: string): Promise<string> {
  try {
    const st = await stat(file);
    if ((st.mode & 0o077) !== 0) {
      throw new Error(`admin token file ${file} is readable by others; chmod 600 it`);
    }
    const t = (await readFile(file, "utf8")).trim();
    if (t.length < 32) throw new Error(`admin token file ${file} holds no valid token`);
    return t;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const token = `lhadm_${randomBytes(32).toString("base64url")}`;
  await writeFile(file, `${token}\n`, { mode: 0o600, flag: "wx" });
  return token;
}

/** Reads an existing admin token (the CLI's side); a clear error when the sidecar never ran. */
export async function readAdminToken(file: string): Promise<string> {
  try {
    return (await readFile(file, "utf8")).trim();
  } catch {
    throw new Error(`cannot read the admin token at ${file}: has 'leasehold serve' run with this config?`);
  }
}
