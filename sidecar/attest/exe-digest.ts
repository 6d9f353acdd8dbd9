import { createHash } from "node:crypto";
import { createReadStream, statSync } from "node:fs";

/** How many executables' digests are kept. */
const MAX_ENTRIES = 512;

/**
 * SHA-256 of a process's executable, read through `/proc/<pid>/exe` (the file the process runs,
 * even if its path was since replaced). Cached by device, inode, size, mtime and ctime of that
 * file: rewriting it changes ctime, which no user can set back.
 */
export class ExeDigests {
  private readonly cache = new Map<string, Promise<string>>();

  /** Rejects when the executable cannot be read. */
  digest(exeLink: string): Promise<string> {
    const s = statSync(exeLink, { bigint: true });
    const key = `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const p = hashFile(exeLink);
    this.cache.set(key, p);
    p.catch(() => this.cache.delete(key));
    if (this.cache.size > MAX_ENTRIES) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    return p;
  }
}

function hashFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash("sha256");
    createReadStream(path, { highWaterMark: 1 << 20 })
      .on("data", (chunk) => h.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(h.digest("hex")));
  });
}
