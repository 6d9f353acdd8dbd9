import { MSG } from "./constants.js";
import type { TappedMessage } from "./frame-tap.js";
import { changesRolePassword } from "./password-statements.js";
import { statementText } from "./statement-audit.js";

/**
 * What a refused statement becomes. The server itself answers it with ERROR 42501 at the very
 * place the statement held in the stream, so pipelined messages, the extended protocol's
 * skip-to-Sync and the transaction state all stay as the client expects: the session goes on.
 */
export const REFUSAL_SQL =
  "DO $leasehold$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', " +
  "MESSAGE = 'leasehold: changing a role''s password is not allowed through the proxy', " +
  "HINT = 'the resource does not reveal its password (reveal: false); ask its operator'; END$leasehold$";

/** The largest Query or Parse message the guard holds whole to judge it (PostgreSQL's own cap is 1 GiB). */
export const MAX_GUARDED_STATEMENT_BYTES = 16 * 1024 * 1024;

/** What the statement audit is given of a message it records (as the frame tap would give it). */
const MAX_AUDITED_BYTES = 1024 * 1024;

export interface StatementGuardOptions {
  /** A statement was refused and replaced; `text` is for a digest only, never to be stored. */
  readonly onRefused: (text: string) => void;
  /** A Query or Parse that passed (for the statement audit). */
  readonly onStatement?: ((m: TappedMessage) => void) | undefined;
  /** The stream can no longer be judged (a malformed length, an oversized statement): end the session. */
  readonly onUnjudgeable: (why: string) => void;
  /** @default MAX_GUARDED_STATEMENT_BYTES */
  readonly maxStatementBytes?: number | undefined;
}

function frame(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

/** The refusal in place of a Query, or of a Parse (same statement name, no parameter types). */
function replacement(type: number, body: Buffer): Buffer {
  const sql = Buffer.from(`${REFUSAL_SQL}\0`, "utf8");
  if (type === MSG.query) return frame(type, sql);
  const nameEnd = body.indexOf(0);
  const name = body.subarray(0, nameEnd < 0 ? 0 : nameEnd + 1);
  return frame(type, Buffer.concat([name.length > 0 ? name : Buffer.from([0]), sql, Buffer.alloc(2)]));
}

/**
 * Follows the client-to-server stream of a spliced PostgreSQL session and holds each simple
 * Query and extended-protocol Parse message until it is whole, so that one that would change a
 * role's password never reaches the server: it is replaced by a statement that fails with
 * 42501. Every other message passes through as it arrives. Fails closed: once the stream cannot
 * be followed, nothing more is forwarded.
 */
export class StatementGuard {
  private readonly header = Buffer.alloc(5);
  private headerHave = 0;
  /** Body bytes still to come of the current message. */
  private remaining = 0;
  private held: { type: number; parts: Buffer[]; head: Buffer } | undefined;
  private dead = false;
  private readonly max: number;

  constructor(private readonly o: StatementGuardOptions) {
    this.max = o.maxStatementBytes ?? MAX_GUARDED_STATEMENT_BYTES;
  }

  /** What to forward for this chunk from the client. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    while (i < chunk.length && !this.dead) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - i);
        const piece = chunk.subarray(i, i + take);
        // Held bytes are copied: the chunk's memory is the stream's once the call returns.
        if (this.held) this.held.parts.push(Buffer.from(piece));
        else out.push(piece);
        this.remaining -= take;
        i += take;
        if (this.remaining === 0 && this.held) out.push(this.judge());
        continue;
      }
      const take = Math.min(5 - this.headerHave, chunk.length - i);
      chunk.copy(this.header, this.headerHave, i, i + take);
      this.headerHave += take;
      i += take;
      if (this.headerHave < 5) continue;
      this.headerHave = 0;
      const type = this.header[0] as number;
      const len = this.header.readInt32BE(1);
      if (len < 4) return this.fail(out, "a message with an invalid length");
      this.remaining = len - 4;
      const head = Buffer.from(this.header);
      if (type === MSG.query || type === MSG.parse) {
        if (len + 1 > this.max) return this.fail(out, `a statement of more than ${this.max} bytes`);
        this.held = { type, parts: [], head };
        if (this.remaining === 0) out.push(this.judge());
      } else {
        out.push(head);
      }
    }
    return this.dead ? [] : out;
  }

  private fail(out: Buffer[], why: string): Buffer[] {
    this.dead = true;
    out.length = 0;
    this.o.onUnjudgeable(why);
    return [];
  }

  private judge(): Buffer {
    const h = this.held;
    this.held = undefined;
    if (!h) return Buffer.alloc(0);
    const body = Buffer.concat(h.parts);
    const text = statementText({ type: h.type, body, truncated: false });
    if (text !== undefined && changesRolePassword(text)) {
      this.o.onRefused(text);
      return replacement(h.type, body);
    }
    this.o.onStatement?.({
      type: h.type,
      body: body.length > MAX_AUDITED_BYTES ? body.subarray(0, MAX_AUDITED_BYTES) : body,
      truncated: body.length > MAX_AUDITED_BYTES,
    });
    return Buffer.concat([h.head, body]);
  }
}
