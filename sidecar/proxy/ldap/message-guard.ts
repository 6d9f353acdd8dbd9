import { frameHeader, LdapProtocolError, messagePrefix } from "./ber-frame.js";
import type { RdnValues } from "./dn-match.js";
import { type Refusal, sessionRefusal } from "./session-rules.js";
import { CLIENT_OPS, decodeMessage } from "./messages.js";

/**
 * Requests the guard holds whole and decodes before deciding (the rest are relayed as they come):
 * bind, extended, modify, add, delete and modify DN.
 */
const INSPECTED = new Set([0x60, 0x77, 0x66, 0x68, 0x4a, 0x6c]);
/** Answers the listener may owe the client while the server is in the middle of a message. */
const MAX_QUEUED = 256;
/** The server's messages are framed only to find their ends; it is not held to the client's limit. */
const NO_LIMIT = 2 ** 32 + 8;

export interface MessageGuardOptions {
  readonly maxMessageBytes: number;
  /** The RDN values of the account's DN (dn-match.ts); null when they could not be read. */
  readonly account: RdnValues | null;
  /** Writes an answer to the client now (the client's stream is between two messages). */
  readonly answer: (reply: Buffer) => void;
  /** A request was refused (`what`: the rule, for the log). */
  readonly refused: (what: string) => void;
  /** A client request was framed (its protocolOp tag), before it is relayed or refused. */
  readonly request?: ((opTag: number) => void) | undefined;
  /** The client's bytes are not LDAP, or the server's are not: the session must end. */
  readonly violation: (why: string) => void;
}

/**
 * Frames a bound session's traffic both ways. Client messages are classified by protocolOp as
 * they arrive; binds, extended operations, modifies and adds are held whole and decoded, and
 * those the listener refuses (see session-rules.ts) are answered here and never reach the
 * server. Everything else is relayed as it comes, chunk by chunk. The listener's answers reach
 * the client only between two of the server's messages, never inside one.
 */
export class LdapMessageGuard {
  /** Client side: the start of a message not yet classified. */
  private upHead = Buffer.alloc(0);
  private upPass = 0;
  private held: Buffer[] = [];
  private heldLeft = 0;
  /** Server side: bytes left in its current message, and the start of a header not yet whole. */
  private downLeft = 0;
  private downHead = Buffer.alloc(0);
  private queued: Buffer[] = [];
  private broken = false;

  constructor(private readonly o: MessageGuardOptions) {}

  /** What to send the server for a chunk from the client. */
  readonly up = (chunk: Buffer): readonly Buffer[] => {
    if (this.broken) return [];
    try {
      return this.scanUp(chunk);
    } catch (err) {
      this.fail(err);
      return [];
    }
  };

  /** What to send the client for a chunk from the server: the chunk, with owed answers between messages. */
  readonly down = (chunk: Buffer): readonly Buffer[] => {
    if (this.broken) return [];
    try {
      return this.scanDown(chunk);
    } catch (err) {
      this.fail(err);
      return [];
    }
  };

  /** True when the client's stream is between two of the server's messages. */
  get atBoundary(): boolean {
    return this.downLeft === 0 && this.downHead.length === 0;
  }

  private fail(err: unknown): void {
    this.broken = true;
    this.o.violation(err instanceof LdapProtocolError ? err.message : (err as Error).message);
  }

  private scanUp(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.upPass > 0) {
        const n = Math.min(this.upPass, chunk.length - at);
        out.push(chunk.subarray(at, at + n));
        this.upPass -= n;
        at += n;
        continue;
      }
      if (this.heldLeft > 0) {
        const n = Math.min(this.heldLeft, chunk.length - at);
        this.held.push(chunk.subarray(at, at + n));
        this.heldLeft -= n;
        at += n;
        if (this.heldLeft === 0) this.decide(out);
        continue;
      }
      const headLength = this.upHead.length;
      const avail = headLength > 0 ? Buffer.concat([this.upHead, chunk.subarray(at)]) : chunk.subarray(at);
      const h = frameHeader(avail, 0, this.o.maxMessageBytes);
      const p = h && messagePrefix(avail, 0, h);
      if (!h || !p) {
        this.upHead = Buffer.from(avail);
        break;
      }
      if (!CLIENT_OPS.has(p.opTag)) throw new LdapProtocolError("a message that is not a client request");
      this.o.request?.(p.opTag);
      this.upHead = Buffer.alloc(0);
      const have = Math.min(avail.length, h.totalBytes);
      at += have - headLength;
      if (INSPECTED.has(p.opTag)) {
        this.held = [Buffer.from(avail.subarray(0, have))];
        this.heldLeft = h.totalBytes - have;
        if (this.heldLeft === 0) this.decide(out);
      } else {
        out.push(avail.subarray(0, have));
        this.upPass = h.totalBytes - have;
      }
    }
    return out;
  }

  /** A held message is whole: relay it, or answer it in the server's stead. */
  private decide(out: Buffer[]): void {
    const frame = this.held.length === 1 ? (this.held[0] as Buffer) : Buffer.concat(this.held);
    this.held = [];
    const refusal: Refusal | null = sessionRefusal(decodeMessage(frame), this.o.account);
    if (refusal === null) {
      out.push(frame);
      return;
    }
    this.o.refused(refusal.rule);
    if (this.atBoundary) {
      this.o.answer(refusal.reply);
      return;
    }
    if (this.queued.length >= MAX_QUEUED) throw new LdapProtocolError("too many refused requests in flight");
    this.queued.push(refusal.reply);
  }

  private scanDown(chunk: Buffer): Buffer[] {
    if (this.queued.length === 0 && this.downHead.length === 0 && this.downLeft >= chunk.length) {
      this.downLeft -= chunk.length;
      return [chunk];
    }
    const out: Buffer[] = [];
    let from = 0;
    let at = 0;
    const boundary = () => {
      if (this.queued.length === 0) return;
      out.push(chunk.subarray(from, at), ...this.queued);
      this.queued = [];
      from = at;
    };
    while (at < chunk.length) {
      if (this.downLeft > 0) {
        const n = Math.min(this.downLeft, chunk.length - at);
        this.downLeft -= n;
        at += n;
        if (this.downLeft === 0) boundary();
        continue;
      }
      const headLength = this.downHead.length;
      const avail =
        headLength > 0 ? Buffer.concat([this.downHead, chunk.subarray(at, at + 6)]) : chunk.subarray(at);
      const h = frameHeader(avail, 0, NO_LIMIT);
      if (!h) {
        this.downHead = Buffer.concat([this.downHead, chunk.subarray(at)]);
        at = chunk.length;
        break;
      }
      this.downHead = Buffer.alloc(0);
      at += h.headerBytes - headLength;
      this.downLeft = h.totalBytes - h.headerBytes;
      if (this.downLeft === 0) boundary();
    }
    if (from < chunk.length) out.push(chunk.subarray(from));
    return out;
  }
}
