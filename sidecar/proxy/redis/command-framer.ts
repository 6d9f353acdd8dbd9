import { RespProtocolError } from "./resp.js";

/** Redis' own cap on an inline command (PROTO_INLINE_MAX_SIZE). */
const INLINE_MAX = 64 * 1024;
/** A header line (`*3`, `$5`) longer than this is not RESP. */
const HEADER_MAX = 32;
const MAX_ARGS = 1024 * 1024;

/**
 * Cuts the client-to-server byte stream of a Redis session into whole commands, as the server
 * reads them (RESP arrays of bulk strings, or inline lines), whatever the chunking: each byte is
 * looked at once, and a command is held only until it is whole. A command of more than
 * `maxCommandBytes`, or anything that is not a command, throws RespProtocolError. With `keep`
 * false it only counts: arguments are not kept (each command comes out empty), and no cap applies.
 */
export class CommandFramer {
  private line: Buffer[] = [];
  private lineLength = 0;
  /** Arguments still to come of the current array; -1 between commands. */
  private argsLeft = -1;
  private args: Buffer[] = [];
  /** Bytes still to come of the current bulk (its CRLF included); -1 while reading its header. */
  private bulkLeft = -1;
  private bulk: Buffer[] = [];
  private held = 0;
  private inline = false;

  constructor(
    private readonly maxCommandBytes: number,
    private readonly keep = true,
  ) {}

  /** The commands this chunk completes (blank lines and empty arrays are none). */
  push(chunk: Buffer): Buffer[][] {
    const out: Buffer[][] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.bulkLeft > 0) {
        const take = Math.min(this.bulkLeft, chunk.length - i);
        if (this.keep) this.bulk.push(chunk.subarray(i, i + take));
        this.bulkLeft -= take;
        i += take;
        if (this.bulkLeft === 0) this.endBulk(out);
        continue;
      }
      if (this.argsLeft < 0 && this.lineLength === 0) this.inline = chunk[i] !== 0x2a;
      const nl = chunk.indexOf(0x0a, i);
      const stop = nl < 0 ? chunk.length : nl + 1;
      this.line.push(chunk.subarray(i, stop));
      this.lineLength += stop - i;
      this.grow(stop - i);
      i = stop;
      if (this.lineLength > (this.inline ? INLINE_MAX : HEADER_MAX))
        throw new RespProtocolError(this.inline ? "too big inline request" : "invalid bulk length");
      if (nl < 0) continue;
      const text = Buffer.concat(this.line)
        .toString("utf8")
        .replace(/\r?\n$/, "");
      this.line = [];
      this.lineLength = 0;
      this.onLine(text, out);
    }
    return out;
  }

  private grow(n: number): void {
    if (!this.keep) return;
    this.held += n;
    if (this.held > this.maxCommandBytes)
      throw new RespProtocolError(`a command of more than ${this.maxCommandBytes} bytes`);
  }

  private onLine(text: string, out: Buffer[][]): void {
    if (this.inline) {
      this.held = 0;
      if (text.includes("\0")) throw new RespProtocolError("invalid inline request");
      const args = text.split(/[ \t]+/).filter((a) => a !== "");
      if (args.length > 0) out.push(this.keep ? args.map((a) => Buffer.from(a, "utf8")) : []);
      return;
    }
    if (this.argsLeft < 0) {
      const n = count(text.slice(1), "invalid multibulk length");
      if (n > MAX_ARGS) throw new RespProtocolError("invalid multibulk length");
      this.held = 0;
      if (n <= 0) return;
      this.argsLeft = n;
      this.args = [];
      return;
    }
    if (!text.startsWith("$")) throw new RespProtocolError(`expected '$', got '${text.slice(0, 1)}'`);
    const n = count(text.slice(1), "invalid bulk length");
    if (n < 0) throw new RespProtocolError("invalid bulk length");
    // Counted before it arrives: a declared length past the cap is refused, not buffered.
    this.grow(n + 2);
    this.bulkLeft = n + 2;
    this.bulk = [];
  }

  private endBulk(out: Buffer[][]): void {
    this.bulkLeft = -1;
    const whole = Buffer.concat(this.bulk);
    this.bulk = [];
    if (this.keep && (whole[whole.length - 2] !== 0x0d || whole[whole.length - 1] !== 0x0a))
      throw new RespProtocolError("bulk string not terminated");
    if (this.keep) this.args.push(whole.subarray(0, whole.length - 2));
    this.argsLeft -= 1;
    if (this.argsLeft > 0) return;
    out.push(this.args);
    this.args = [];
    this.argsLeft = -1;
    this.held = 0;
  }
}

function count(text: string, what: string): number {
  if (!/^-?\d{1,19}$/.test(text)) throw new RespProtocolError(what);
  return Number(text);
}
