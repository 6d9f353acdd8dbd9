import { HandshakeRefusal } from "../handshake-refusal.js";
import type { SocketReader } from "../socket-reader.js";
import { CANCEL_REQUEST, GSSENC_REQUEST, MAX_STARTUP_BYTES, SQLSTATE, SSL_REQUEST } from "./constants.js";

/** The first packet of a connection, which has no type byte. */
export type FirstPacket =
  | { readonly kind: "ssl" }
  | { readonly kind: "gssenc" }
  | { readonly kind: "cancel"; readonly pid: number; readonly secret: number }
  | {
      readonly kind: "startup";
      readonly major: number;
      readonly minor: number;
      /** In the client's order; names are unique. */
      readonly params: ReadonlyArray<readonly [string, string]>;
    };

/** A typed message: its type byte, its body, and the whole frame for relaying as is. */
export interface Message {
  readonly type: number;
  readonly body: Buffer;
  readonly frame: Buffer;
}

function violation(message: string): HandshakeRefusal {
  return new HandshakeRefusal(SQLSTATE.protocolViolation, message, `08P01 ${message}`);
}

/** A NUL-terminated UTF-8 string at `offset`, and where the next field starts. */
export function cstring(buf: Buffer, offset: number): { value: string; next: number } {
  const end = buf.indexOf(0, offset);
  if (end < 0) throw violation("unterminated string in message");
  return { value: buf.toString("utf8", offset, end), next: end + 1 };
}

function parseParams(body: Buffer): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const seen = new Set<string>();
  let at = 0;
  for (;;) {
    if (at >= body.length) throw violation("startup packet is not terminated");
    if (body[at] === 0) {
      if (at !== body.length - 1) throw violation("bytes after the end of the startup packet");
      return out;
    }
    const name = cstring(body, at);
    const value = cstring(body, name.next);
    if (seen.has(name.value)) throw violation(`startup parameter "${name.value.slice(0, 64)}" given twice`);
    seen.add(name.value);
    out.push([name.value, value.value]);
    at = value.next;
  }
}

/** Reads the untyped first packet (SSLRequest, GSSENCRequest, CancelRequest or StartupMessage). */
export async function readFirstPacket(reader: SocketReader): Promise<FirstPacket> {
  await reader.need(4);
  const len = reader.peek(4).readInt32BE(0);
  if (len < 8 || len > MAX_STARTUP_BYTES) throw violation("invalid length of startup packet");
  await reader.need(len);
  const pkt = reader.take(len);
  const code = pkt.readInt32BE(4);
  if (code === SSL_REQUEST && len === 8) return { kind: "ssl" };
  if (code === GSSENC_REQUEST && len === 8) return { kind: "gssenc" };
  if (code === CANCEL_REQUEST && len === 16)
    return { kind: "cancel", pid: pkt.readInt32BE(8), secret: pkt.readInt32BE(12) };
  const major = code >>> 16;
  if (major !== 3) {
    throw violation(`unsupported frontend protocol ${major}.${code & 0xffff}: the proxy speaks 3.0`);
  }
  return { kind: "startup", major, minor: code & 0xffff, params: parseParams(pkt.subarray(8)) };
}

/** Reads one typed message, refusing one longer than `max` bytes before any of its body is buffered. */
export async function readMessage(reader: SocketReader, max: number): Promise<Message> {
  await reader.need(5);
  const head = reader.peek(5);
  const len = head.readInt32BE(1);
  if (len < 4) throw violation("invalid message length");
  if (len + 1 > max) throw violation(`message of ${len + 1} bytes exceeds the limit of ${max}`);
  await reader.need(len + 1);
  const frame = reader.take(len + 1);
  return { type: frame[0] as number, body: frame.subarray(5), frame };
}

/** A protocol 3.0 StartupMessage with these parameters, in order. */
export function startupMessage(params: ReadonlyArray<readonly [string, string]>): Buffer {
  const body = Buffer.concat([
    ...params.map(([k, v]) => Buffer.from(`${k}\0${v}\0`, "utf8")),
    Buffer.from([0]),
  ]);
  const out = Buffer.allocUnsafe(8 + body.length);
  out.writeInt32BE(8 + body.length, 0);
  out.writeInt32BE(3 << 16, 4);
  body.copy(out, 8);
  return out;
}
