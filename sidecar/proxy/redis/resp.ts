/** The request is not RESP (or not a command): the connection is answered `-ERR Protocol error` and closed. */
export class RespProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RespProtocolError";
  }
}

/** Redis' own cap on an inline command (PROTO_INLINE_MAX_SIZE). */
const INLINE_MAX = 64 * 1024;
const MAX_DEPTH = 32;

function lineEnd(buf: Buffer, at: number): number {
  const nl = buf.indexOf("\r\n", at);
  return nl < 0 ? -1 : nl;
}

function intLine(buf: Buffer, at: number, end: number): number {
  const text = buf.toString("latin1", at, end);
  if (!/^-?\d{1,19}$/.test(text)) throw new RespProtocolError("invalid length");
  return Number(text);
}

/**
 * The offset just past one complete RESP2/RESP3 value starting at `at`, or -1 while it is
 * incomplete. Used to find where a server's reply ends without interpreting it.
 */
export function respValueEnd(buf: Buffer, at: number, depth = 0): number {
  if (depth > MAX_DEPTH) throw new RespProtocolError("reply nested too deeply");
  if (at >= buf.length) return -1;
  const type = String.fromCharCode(buf[at] as number);
  const end = lineEnd(buf, at + 1);
  if (end < 0) return -1;
  switch (type) {
    case "+":
    case "-":
    case ":":
    case "_":
    case ",":
    case "#":
    case "(":
      return end + 2;
    case "$":
    case "!":
    case "=": {
      const n = intLine(buf, at + 1, end);
      if (n < 0) return end + 2;
      const stop = end + 2 + n + 2;
      return stop <= buf.length ? stop : -1;
    }
    case "*":
    case "~":
    case ">":
    case "%":
    case "|": {
      const n = intLine(buf, at + 1, end);
      let next = end + 2;
      const items = n < 0 ? 0 : type === "%" || type === "|" ? 2 * n : n;
      for (let i = 0; i < items; i++) {
        next = respValueEnd(buf, next, depth + 1);
        if (next < 0) return -1;
      }
      // An attribute comes before the value it describes.
      return type === "|" ? respValueEnd(buf, next, depth + 1) : next;
    }
    default:
      throw new RespProtocolError(`unexpected reply type byte ${buf[at]}`);
  }
}

/** One client command: its arguments and how many bytes it took. Empty `args` for a blank inline line. */
export interface ParsedCommand {
  readonly args: readonly Buffer[];
  readonly length: number;
}

/**
 * Parses the client command at the start of `buf` (a RESP array of bulk strings, or an inline
 * command), or returns null while it is incomplete.
 * @throws RespProtocolError for anything else, or a bulk longer than `maxBulk`.
 */
export function parseCommand(buf: Buffer, maxBulk: number): ParsedCommand | null {
  if (buf.length === 0) return null;
  if (buf[0] !== 0x2a) {
    const nl = buf.indexOf(0x0a);
    if (nl < 0) {
      if (buf.length > INLINE_MAX) throw new RespProtocolError("too big inline request");
      return null;
    }
    const line = buf.toString("utf8", 0, nl).replace(/\r$/, "");
    if (/[\0]/.test(line)) throw new RespProtocolError("invalid inline request");
    const args = line
      .split(/[ \t]+/)
      .filter((a) => a !== "")
      .map((a) => Buffer.from(a, "utf8"));
    return { args, length: nl + 1 };
  }
  const end = lineEnd(buf, 1);
  if (end < 0) {
    if (buf.length > 32) throw new RespProtocolError("invalid multibulk length");
    return null;
  }
  const count = intLine(buf, 1, end);
  if (count > 1024 * 1024) throw new RespProtocolError("invalid multibulk length");
  const args: Buffer[] = [];
  let at = end + 2;
  for (let i = 0; i < count; i++) {
    if (at >= buf.length) return null;
    if (buf[at] !== 0x24)
      throw new RespProtocolError(`expected '$', got '${String.fromCharCode(buf[at] as number)}'`);
    const e = lineEnd(buf, at + 1);
    if (e < 0) {
      if (buf.length - at > 32) throw new RespProtocolError("invalid bulk length");
      return null;
    }
    const n = intLine(buf, at + 1, e);
    if (n < 0 || n > maxBulk) throw new RespProtocolError("invalid bulk length");
    const stop = e + 2 + n;
    if (stop + 2 > buf.length) return null;
    if (buf[stop] !== 0x0d || buf[stop + 1] !== 0x0a)
      throw new RespProtocolError("bulk string not terminated");
    args.push(buf.subarray(e + 2, stop));
    at = stop + 2;
  }
  return { args, length: at };
}

/** A RESP array of bulk strings: how a client sends a command. */
export function encodeCommand(args: ReadonlyArray<string | Buffer>): Buffer {
  const bufs = args.map((a) => (typeof a === "string" ? Buffer.from(a, "utf8") : a));
  // One allocation: the listener re-encodes every command it judges.
  let length = 3 + String(bufs.length).length;
  for (const b of bufs) length += 5 + String(b.length).length + b.length;
  const out = Buffer.allocUnsafe(length);
  let at = out.write(`*${bufs.length}\r\n`, 0, "latin1");
  for (const b of bufs) {
    at += out.write(`$${b.length}\r\n`, at, "latin1");
    at += b.copy(out, at);
    out[at++] = 0x0d;
    out[at++] = 0x0a;
  }
  return out;
}

/** An error reply; `line` starts with its code (ERR, WRONGPASS, NOAUTH…) and holds no CR/LF. */
export function errorReply(line: string): Buffer {
  return Buffer.from(`-${line.replace(/[\r\n]+/g, " ")}\r\n`, "utf8");
}

/** A decoded RESP value: strings (simple, bulk, verbatim), integers, null, errors, and lists (arrays, sets, pushes; maps flattened to key, value, …). */
export type RespValue = string | number | null | { readonly error: string } | readonly RespValue[];

/**
 * Decodes the one complete RESP2/RESP3 value at the start of `buf` (as {@link respValueEnd}
 * found it). Attributes are dropped; doubles and big numbers are kept as their text.
 */
export function decodeResp(buf: Buffer): RespValue {
  const [value] = decodeAt(buf, 0, 0);
  return value;
}

function decodeAt(buf: Buffer, at: number, depth: number): [RespValue, number] {
  if (depth > MAX_DEPTH) throw new RespProtocolError("reply nested too deeply");
  const end = lineEnd(buf, at + 1);
  if (end < 0) throw new RespProtocolError("incomplete reply");
  const type = String.fromCharCode(buf[at] as number);
  const line = buf.toString("utf8", at + 1, end);
  switch (type) {
    case "+":
    case ",":
    case "(":
      return [line, end + 2];
    case "-":
      return [{ error: line }, end + 2];
    case ":":
      return [intLine(buf, at + 1, end), end + 2];
    case "#":
      return [line === "t" ? 1 : 0, end + 2];
    case "_":
      return [null, end + 2];
    case "$":
    case "!":
    case "=": {
      const n = intLine(buf, at + 1, end);
      if (n < 0) return [null, end + 2];
      const text = buf.toString("utf8", end + 2, end + 2 + n);
      const value = type === "!" ? { error: text } : type === "=" ? text.slice(4) : text;
      return [value, end + 2 + n + 2];
    }
    default: {
      const n = intLine(buf, at + 1, end);
      const items = n < 0 ? 0 : type === "%" || type === "|" ? 2 * n : n;
      const out: RespValue[] = [];
      let next = end + 2;
      for (let i = 0; i < items; i++) {
        const [v, after] = decodeAt(buf, next, depth + 1);
        out.push(v);
        next = after;
      }
      return type === "|" ? decodeAt(buf, next, depth + 1) : [n < 0 ? null : out, next];
    }
  }
}
