import { open } from "node:fs/promises";

const CHUNK = 64 * 1024;
const NL = 0x0a;

export interface FileLine {
  /** 1-based line number (forward reading only; 0 when reading backward). */
  readonly number: number;
  /** Byte offset of the line's first byte. */
  readonly offset: number;
  readonly text: string;
  /** False for a last line with no newline after it (a torn write). */
  readonly complete: boolean;
}

/** Every line of a file, first to last, split on "\n" only; memory stays at one chunk plus one line. */
export async function* linesForward(file: string): AsyncGenerator<FileLine> {
  const fh = await open(file, "r");
  try {
    const buf = Buffer.alloc(CHUNK);
    let carry: Buffer = Buffer.alloc(0);
    let carryOffset = 0;
    let pos = 0;
    let number = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      let data = carry.length
        ? Buffer.concat([carry, buf.subarray(0, bytesRead)])
        : buf.subarray(0, bytesRead);
      let start = 0;
      for (let i = data.indexOf(NL); i !== -1; i = data.indexOf(NL, start)) {
        number++;
        yield { number, offset: carryOffset + start, text: data.toString("utf8", start, i), complete: true };
        start = i + 1;
      }
      carryOffset += start;
      data = data.subarray(start);
      carry = Buffer.from(data);
    }
    if (carry.length > 0) {
      yield { number: number + 1, offset: carryOffset, text: carry.toString("utf8"), complete: false };
    }
  } finally {
    await fh.close();
  }
}

/**
 * Complete, non-empty lines of a file, last to first (a torn tail without newline is skipped).
 * Reads the file in chunks from the end, so the newest records come first without reading it all.
 */
export async function* linesBackward(file: string): AsyncGenerator<FileLine> {
  const fh = await open(file, "r");
  try {
    let pos = (await fh.stat()).size;
    let tail: Buffer = Buffer.alloc(0);
    let first = true;
    while (pos > 0) {
      const len = Math.min(CHUNK, pos);
      pos -= len;
      const chunk = Buffer.alloc(len);
      await fh.read(chunk, 0, len, pos);
      let data = tail.length ? Buffer.concat([chunk, tail]) : chunk;
      if (first) {
        // Whatever follows the last newline was never completed: not a record.
        const lastNl = data.lastIndexOf(NL);
        if (lastNl === -1) {
          tail = Buffer.from(data);
          continue;
        }
        data = data.subarray(0, lastNl);
        first = false;
      }
      let stop = data.length;
      while (stop > 0) {
        const i = data.lastIndexOf(NL, stop - 1);
        if (i === -1) break;
        if (stop - i - 1 > 0) {
          yield { number: 0, offset: pos + i + 1, text: data.toString("utf8", i + 1, stop), complete: true };
        }
        stop = i;
      }
      tail = Buffer.from(data.subarray(0, stop));
    }
    if (!first && tail.length > 0)
      yield { number: 0, offset: 0, text: tail.toString("utf8"), complete: true };
  } finally {
    await fh.close();
  }
}
