import { createHash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";

/** How many executables' digests are kept. */
const MAX_ENTRIES = 512;

/**
 * SHA-256 of a process's executable, read through `/proc/<pid>/exe` (the file the process runs,
 * even if its path was since replaced). Cached by device, inode, size, mtime and ctime of that
 * file: rewriting it changes ctime, which no user can set back.
 */
export class ExeDigests {
  private readonly cache = new Map<string, Promise<string>>();

  /**
   * Rejects when the executable cannot be read. The file is opened once: the cache key is that
   * descriptor's `fstat` and the digest is read from it, so a process that `execve`s another
   * program meanwhile cannot file one program's digest under the other's key.
   */
  async digest(exeLink: string): Promise<string> {
    const file = await open(exeLink, "r");
    let owned = true;
    try {
      const s = await file.stat({ bigint: true });
      const key = `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
      const hit = this.cache.get(key);
      if (hit) {
        this.cache.delete(key);
        this.cache.set(key, hit);
        return await hit;
      }
      owned = false;
      const p = hashHandle(file);
      this.cache.set(key, p);
      p.catch(() => this.cache.delete(key));
      if (this.cache.size > MAX_ENTRIES) {
        const oldest = this.cache.keys().next().value;
        if (oldest !== undefined) this.cache.delete(oldest);
      }
      return await p;
    } finally {
      if (owned) await file.close();
    }
  }
}

/** SHA-256 of an open file, read from its start; the handle is closed afterwards. */
async function hashHandle(file: FileHandle): Promise<string> {
  const h = createHash("sha256");
  try {
    for await (const chunk of file.createReadStream({ start: 0, highWaterMark: 1 << 20, autoClose: false })) {
      h.update(chunk as Buffer);
    }
    return h.digest("hex");
  } finally {
    await file.close();
  }
}
