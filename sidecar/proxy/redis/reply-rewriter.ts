import { RespProtocolError } from "./resp.js";

/** An error line held to be looked at; a longer one is passed on as it is. */
const HELD_MAX = 4096;
const HEADER_MAX = 64;

/**
 * Follows the server-to-client stream of a Redis session value by value (RESP2 and RESP3,
 * bulk payloads skipped without being buffered) and replaces each top-level error reply that
 * `replace` recognises by what it returns. Everything else is passed on as it arrives.
 */
export class ReplyRewriter {
  /** Elements still to come of each open aggregate, innermost last. */
  private readonly open: number[] = [];
  /** Bytes of the current bulk payload (CRLF included) still to skip. */
  private skip = 0;
  /** The current header line, while it is read; `null` between values. */
  private header: Buffer[] | null = null;
  private headerLength = 0;
  /** A top-level error line being held whole. */
  private holding = false;

  constructor(private readonly replace: (line: string) => Buffer | undefined) {}

  /** What to send the client for this chunk. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let from = 0;
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, chunk.length - i);
        this.skip -= take;
        i += take;
        if (this.skip === 0) this.done();
        continue;
      }
      if (this.header === null) {
        this.header = [];
        this.headerLength = 0;
        this.holding = chunk[i] === 0x2d && this.open.length === 0;
        if (this.holding && i > from) {
          out.push(chunk.subarray(from, i));
          from = i;
        }
      }
      const nl = chunk.indexOf(0x0a, i);
      const stop = nl < 0 ? chunk.length : nl + 1;
      // Only a held error line is kept whole; of any other, what its type and count need.
      if (this.holding || this.headerLength < HEADER_MAX) this.header.push(chunk.subarray(i, stop));
      this.headerLength += stop - i;
      i = stop;
      if (this.holding && this.headerLength > HELD_MAX) {
        // Not ours (ours are short): pass it on and stop holding.
        this.holding = false;
        out.push(Buffer.concat(this.header));
        from = i;
      } else if (!this.holding && this.headerLength > HEADER_MAX && !isLine(this.header)) {
        throw new RespProtocolError("reply header too long");
      }
      if (nl < 0) {
        if (this.holding) from = i;
        continue;
      }
      const line = Buffer.concat(this.header);
      this.header = null;
      if (this.holding) {
        this.holding = false;
        out.push(this.replace(line.toString("utf8", 1, line.length - 2)) ?? line);
        from = i;
      }
      this.onHeader(line);
    }
    if (!this.holding && from < chunk.length) out.push(chunk.subarray(from));
    return out;
  }

  private onHeader(line: Buffer): void {
    const type = String.fromCharCode(line[0] as number);
    if ("+-:_,#(".includes(type)) {
      this.done();
      return;
    }
    const text = line.toString("latin1", 1, line.length).replace(/\r?\n$/, "");
    if (!/^-?\d{1,19}$/.test(text)) throw new RespProtocolError("invalid length in a reply");
    const n = Number(text);
    if ("$!=".includes(type)) {
      if (n < 0) this.done();
      else this.skip = n + 2;
      return;
    }
    if ("*~>%|".includes(type)) {
      const items = n < 0 ? 0 : type === "%" ? 2 * n : type === "|" ? 2 * n + 1 : n;
      if (items === 0) this.done();
      else this.open.push(items);
      return;
    }
    throw new RespProtocolError(`unexpected reply type byte ${line[0]}`);
  }

  /** A value ended: so may the aggregates it completes. */
  private done(): void {
    for (;;) {
      const last = this.open.length - 1;
      if (last < 0) return;
      const left = (this.open[last] as number) - 1;
      if (left > 0) {
        this.open[last] = left;
        return;
      }
      this.open.pop();
    }
  }
}

/** A simple string, error, number or the like: a line of any length (no count to read). */
function isLine(parts: readonly Buffer[]): boolean {
  const first = parts[0]?.[0];
  return first !== undefined && "+-:_,#(".includes(String.fromCharCode(first));
}
