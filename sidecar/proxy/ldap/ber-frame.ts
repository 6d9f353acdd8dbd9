/** A byte stream that is not LDAPv3 as RFC 4511 frames it: the peer gets a Notice of Disconnection. */
export class LdapProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LdapProtocolError";
  }
}

/** The universal SEQUENCE tag every LDAPMessage starts with. */
const SEQUENCE = 0x30;
const INTEGER = 0x02;
/** Length octets of a long-form length the listener accepts: 4 (frames up to 4 GiB, capped far lower). */
const MAX_LENGTH_OCTETS = 4;

/** Where a frame's content starts and how long the whole frame is, once its header is in. */
export interface FrameHeader {
  /** Bytes of tag and length. */
  readonly headerBytes: number;
  /** Tag, length and content. */
  readonly totalBytes: number;
}

/**
 * Reads the header of the LDAPMessage at `at` in `buf`: null while too few bytes are in. RFC
 * 4511 section 5.1 allows only the definite length form; an indefinite length, another tag or a
 * frame over `maxBytes` throws LdapProtocolError (before any of its content is buffered).
 */
export function frameHeader(buf: Buffer, at: number, maxBytes: number): FrameHeader | null {
  if (buf.length - at < 2) return null;
  if (buf[at] !== SEQUENCE) throw new LdapProtocolError("a message is not an LDAPMessage SEQUENCE");
  const first = buf[at + 1] as number;
  let length: number;
  let headerBytes: number;
  if (first < 0x80) {
    length = first;
    headerBytes = 2;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw new LdapProtocolError("indefinite length (RFC 4511 allows definite lengths only)");
    if (n > MAX_LENGTH_OCTETS) throw new LdapProtocolError("message length too large");
    if (buf.length - at < 2 + n) return null;
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (buf[at + 2 + i] as number);
    headerBytes = 2 + n;
  }
  const totalBytes = headerBytes + length;
  if (totalBytes > maxBytes) throw new LdapProtocolError(`message of ${totalBytes} bytes over the limit`);
  return { headerBytes, totalBytes };
}

/** The first facts of an LDAPMessage: its messageID and the tag octet of its protocolOp. */
export interface MessagePrefix {
  readonly messageId: number;
  readonly opTag: number;
}

/**
 * The messageID and protocolOp tag of the message whose header is `h`, read from its first
 * bytes; null while they have not all arrived. A messageID that is not an INTEGER of 1 to 4
 * octets in 0..2^31-1 (RFC 4511 MessageID) throws LdapProtocolError.
 */
export function messagePrefix(buf: Buffer, at: number, h: FrameHeader): MessagePrefix | null {
  const content = at + h.headerBytes;
  const end = at + h.totalBytes;
  if (buf.length < content + 2) return h.totalBytes - h.headerBytes < 2 ? bad("truncated") : null;
  if (buf[content] !== INTEGER) return bad("messageID is not an INTEGER");
  const idLength = buf[content + 1] as number;
  if (idLength < 1 || idLength > 4) return bad("messageID length");
  const opAt = content + 2 + idLength;
  if (opAt >= end) return bad("no protocolOp");
  if (buf.length <= opAt) return null;
  let id = 0;
  for (let i = 0; i < idLength; i++) id = id * 256 + (buf[content + 2 + i] as number);
  if ((buf[content + 2] as number) & 0x80 || id > 0x7fffffff) return bad("messageID out of range");
  return { messageId: id, opTag: buf[opAt] as number };
}

function bad(what: string): never {
  throw new LdapProtocolError(`malformed LDAPMessage: ${what}`);
}

/** The reads of a handshake that frame parsing needs (SocketReader satisfies it). */
export interface FrameSource {
  readonly length: number;
  peek(): Buffer;
  take(n: number): Buffer;
  more(): Promise<void>;
}

/** Resolves with the next whole LDAPMessage from `reader`, at most `maxBytes` long. */
export async function readFrame(reader: FrameSource, maxBytes: number): Promise<Buffer> {
  for (;;) {
    const h = frameHeader(reader.peek(), 0, maxBytes);
    if (h && reader.length >= h.totalBytes) return reader.take(h.totalBytes);
    await reader.more();
  }
}
