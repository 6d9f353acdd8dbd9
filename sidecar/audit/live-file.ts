import { open, stat, truncate } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { dirname } from "node:path";

/** The audit log's live file, open for appending, and who it is (to notice a replaced path). */
export interface OpenFile {
  readonly fh: FileHandle;
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
}

/** Makes a new directory entry durable (the file's own fdatasync does not cover its name). */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Opens the live file for appending; refuses anything but a regular file. */
export async function openLive(file: string): Promise<OpenFile> {
  const fh = await open(file, "a", 0o600);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new Error(`${file} is not a regular file`);
    if (st.size === 0) await syncDir(dirname(file));
    return { fh, dev: st.dev, ino: st.ino, size: st.size };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/**
 * Drops an incomplete last line (a write cut off by a crash: it was never acknowledged).
 * Returns how many bytes were dropped.
 */
export async function dropTornTail(file: string): Promise<number> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    return 0;
  }
  if (size === 0) return 0;
  const fh = await open(file, "r");
  let keep = 0;
  try {
    const chunk = 64 * 1024;
    let pos = size;
    let found = false;
    while (pos > 0 && !found) {
      const len = Math.min(chunk, pos);
      pos -= len;
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, pos);
      const nl = buf.lastIndexOf(0x0a);
      if (nl !== -1) {
        keep = pos + nl + 1;
        found = true;
      }
    }
  } finally {
    await fh.close();
  }
  if (keep === size) return 0;
  await truncate(file, keep);
  return size - keep;
}
