import { HandshakeRefusal } from "../handshake-refusal.js";
import type { SocketReader } from "../socket-reader.js";
import { CANCEL_REQUEST, GSSENC_REQUEST, MAX_STARTUP_BYTES, SQLSTATE, SSL_REQUEST } from "./constants.js";

/** The first packet of a connection, which has no type byte. */
export type FirstPacket =
  | { readonly kind: "ssl"; readonly code: number }
  | { readonly kind: "gssenc"; readonly code: number }
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

/** The server's FATAL 08P01 for a message that breaks the protocol. */
export function violation(message: string): HandshakeRefusal {
  return new HandshakeRefusal(SQLSTATE.protocolViolation, message, `08P01 ${message}`);
}

/**
 * A first packet the server drops without a word: it logs the fault (COMMERROR) and closes,
 * sending no ErrorResponse (postmaster.c, ProcessStartupPacket: an invalid length, a
 * CancelRequest of the wrong size). `message` is the server's log line, for the audit record.
 */
export class StartupDropped extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartupDropped";
  }
}

/** The server's FATAL 0A000 for a protocol version it does not speak (also a second SSLRequest). */
export function unsupportedProtocol(code: number): HandshakeRefusal {
  const message = `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: server supports 3.0 to 3.0`;
  return new HandshakeRefusal(SQLSTATE.featureNotSupported, message, `0A000 ${message}`);
}

/** The server's words for a startup packet whose parameters do not end where the packet does. */
const BAD_LAYOUT = "invalid startup packet layout: expected terminator as last byte";

/** A NUL-terminated UTF-8 string at `offset`, and where the next field starts. */
export function cstring(buf: Buffer, offset: number): { value: string; next: number } {
  const end = buf.indexOf(0, offset);
  if (end < 0) throw violation("unterminated string in message");
  return { value: buf.toString("utf8", offset, end), next: end + 1 };
}

function layoutString(buf: Buffer, offset: number): { value: string; next: number } {
  if (buf.indexOf(0, offset) < 0) throw violation(BAD_LAYOUT);
  return cstring(buf, offset);
}

function parseParams(body: Buffer): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const seen = new Set<string>();
  let at = 0;
  for (;;) {
    if (at >= body.length) throw violation(BAD_LAYOUT);
    if (body[at] === 0) {
      if (at !== body.length - 1) throw violation(BAD_LAYOUT);
      return out;
    }
    const name = layoutString(body, at);
    const value = layoutString(body, name.next);
    if (seen.has(name.value)) throw violation(`startup parameter "${name.value.slice(0, 64)}" given twice`);
    seen.add(name.value);
    out.push([name.value, value.value]);
    at = value.next;
  }
}

/**
 * Reads the untyped first packet (SSLRequest, GSSENCRequest, CancelRequest or StartupMessage),
 * as the server does: a length out of range (the first bytes of a Terminate, of an HTTP
 * request) and a CancelRequest of the wrong size are StartupDropped, a close before the
 * packet is whole is PeerClosedError; both close without an answer.
 */
export async function readFirstPacket(reader: SocketReader): Promise<FirstPacket> {
  await reader.need(4);
  const len = reader.peek(4).readInt32BE(0);
  if (len < 8 || len > MAX_STARTUP_BYTES) throw new StartupDropped("invalid length of startup packet");
  await reader.need(len);
  const pkt = reader.take(len);
  const code = pkt.readInt32BE(4);
  if (code === SSL_REQUEST) return { kind: "ssl", code };
  if (code === GSSENC_REQUEST) return { kind: "gssenc", code };
  if (code === CANCEL_REQUEST) {
    if (len !== 16) throw new StartupDropped("invalid length of startup packet");
    return { kind: "cancel", pid: pkt.readInt32BE(8), secret: pkt.readInt32BE(12) };
  }
  const major = code >>> 16;
  if (major !== 3) throw unsupportedProtocol(code);
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
