import { MSG } from "./constants.js";
import type { TappedMessage } from "./frame-tap.js";
import { changesRolePassword } from "./password-statements.js";
import { statementText } from "./statement-audit.js";

/**
 * Text safe inside the refusal's quoted literal within its dollar-quoted body: printable ASCII,
 * quotes doubled, `$` and `\\` replaced, at most 400 characters.
 */
function literal(text: string): string {
  return text
    .slice(0, 400)
    .replace(/[^\x20-\x7e]|[$\\]/g, "?")
    .replace(/'/g, "''");
}

/**
 * What a refused statement becomes. The server itself answers it with ERROR 42501 at the very
 * place the statement held in the stream, so pipelined messages, the extended protocol's
 * skip-to-Sync and the transaction state all stay as the client expects: the session goes on.
 * `message` and `hint` are reduced to printable ASCII without quotes, `$` or backslashes.
 */
export function refusalSql(message: string, hint: string): string {
  return (
    "DO $leasehold$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', " +
    `MESSAGE = '${literal(message)}', HINT = '${literal(hint)}'; END$leasehold$`
  );
}

/** The refusal of a statement that would change a role's password (reveal: false). */
export const REFUSAL_SQL =
  "DO $leasehold$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', " +
  "MESSAGE = 'leasehold: changing a role''s password is not allowed through the proxy', " +
  "HINT = 'the resource does not reveal its password (reveal: false); ask its operator'; END$leasehold$";

/** Why a statement is refused: the SQL that answers it in its place, and what the audit record says. */
export interface GuardRefusal {
  /** The `DO` block that raises 42501 in the statement's place ({@link refusalSql}). */
  readonly sql: string;
  /** The decision record's scope: the built-in password guard, or `Action::"statement"`. */
  readonly scope: "proxy_statement" | "statement";
  /** The decision record's reason (never the statement's text). */
  readonly reason: string;
  /** The policies that decided, for `statement`. */
  readonly policies?: readonly string[] | undefined;
  /**
   * Parameters the refused statement takes: a replaced Parse declares as many (the client's own
   * types, then `text`), so the client's Bind still matches and Execute gets the 42501.
   */
  readonly params?: number | undefined;
}

/** A check of one statement's text: a refusal, or undefined to let it through. */
export type StatementJudge = (text: string) => GuardRefusal | undefined;

/** Refuses statements that would change a role's password (the default judge). */
export const refusePasswordChanges: StatementJudge = (text) =>
  changesRolePassword(text)
    ? {
        sql: REFUSAL_SQL,
        scope: "proxy_statement",
        reason: "42501 a statement changing a role's password was refused (reveal: false)",
      }
    : undefined;

/** The largest Query or Parse message the guard holds whole to judge it (PostgreSQL's own cap is 1 GiB). */
export const MAX_GUARDED_STATEMENT_BYTES = 16 * 1024 * 1024;

/** What the statement audit is given of a message it records (as the frame tap would give it). */
const MAX_AUDITED_BYTES = 1024 * 1024;

export interface StatementGuardOptions {
  /** Checks in order; the first refusal wins. @default [refusePasswordChanges] */
  readonly judges?: readonly StatementJudge[] | undefined;
  /** A statement was refused and replaced; `text` is for a digest only, never to be stored. */
  readonly onRefused: (text: string, refusal: GuardRefusal) => void;
  /**
   * A Query or Parse that passed (for the statement audit), with its SQL text when the message
   * is whole (not `truncated`).
   */
  readonly onStatement?: ((m: TappedMessage, text: string | undefined) => void) | undefined;
  /** The stream can no longer be judged (a malformed length, an oversized statement): end the session. */
  readonly onUnjudgeable: (why: string) => void;
  /** @default MAX_GUARDED_STATEMENT_BYTES */
  readonly maxStatementBytes?: number | undefined;
  /**
   * Refuse every fast-path FunctionCall (it names a function by OID and carries no SQL a judge
   * could read): it is replaced by a Query of the refusal, which the server answers as a failed
   * call is answered, ErrorResponse then ReadyForQuery. Absent: FunctionCall passes.
   */
  readonly functionCalls?: GuardRefusal | undefined;
}

function frame(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

const TEXT_OID = 25;

/** The parameter types a Parse message declares (possibly none). */
function declaredTypes(body: Buffer, nameEnd: number): number[] {
  const queryEnd = nameEnd < 0 ? -1 : body.indexOf(0, nameEnd + 1);
  if (queryEnd < 0 || queryEnd + 3 > body.length) return [];
  const n = body.readInt16BE(queryEnd + 1);
  const out: number[] = [];
  for (let i = 0; i < n && queryEnd + 3 + 4 * (i + 1) <= body.length; i++)
    out.push(body.readUInt32BE(queryEnd + 3 + 4 * i));
  return out;
}

/**
 * The refusal in place of a Query, or of a Parse (same statement name; as many parameters as
 * the refused statement took, of the client's declared types, then `text`).
 */
function replacement(type: number, body: Buffer, refusal: string, params: number): Buffer {
  const sql = Buffer.from(`${refusal}\0`, "utf8");
  if (type === MSG.query) return frame(type, sql);
  const nameEnd = body.indexOf(0);
  const name = body.subarray(0, nameEnd < 0 ? 0 : nameEnd + 1);
  const declared = declaredTypes(body, nameEnd);
  const count = Math.min(Math.max(declared.length, params), 65535);
  const types = Buffer.alloc(2 + 4 * count);
  types.writeUInt16BE(count, 0);
  for (let i = 0; i < count; i++) types.writeUInt32BE(declared[i] || TEXT_OID, 2 + 4 * i);
  return frame(type, Buffer.concat([name.length > 0 ? name : Buffer.from([0]), sql, types]));
}

/**
 * Follows the client-to-server stream of a spliced PostgreSQL session and holds each simple
 * Query and extended-protocol Parse message until it is whole, so that one a judge refuses (a
 * role's password change; a statement policy denies) never reaches the server: it is replaced
 * by a statement that fails with 42501. Every other message passes through as it arrives. Fails closed: once the stream cannot
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
  private readonly judges: readonly StatementJudge[];

  constructor(private readonly o: StatementGuardOptions) {
    this.max = o.maxStatementBytes ?? MAX_GUARDED_STATEMENT_BYTES;
    this.judges = o.judges ?? [refusePasswordChanges];
  }

  private holds(type: number): boolean {
    return (
      type === MSG.query ||
      type === MSG.parse ||
      (type === MSG.functionCall && this.o.functionCalls !== undefined)
    );
  }

  /** What to forward for this chunk from the client. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    while (i < chunk.length && !this.dead) {
      if (this.remaining === 0 && this.headerHave === 0 && chunk.length - i >= 5) {
        // The usual case: a whole message to hold in this chunk, judged in place without a copy
        // (what is forwarded is written before this call returns).
        const type = chunk[i] as number;
        const len = chunk.readInt32BE(i + 1);
        const end = i + 1 + len;
        if (len >= 4 && end <= chunk.length && len + 1 <= this.max && this.holds(type)) {
          const whole = i === 0 && end === chunk.length ? chunk : chunk.subarray(i, end);
          out.push(this.judge(type, chunk.subarray(i + 5, end), whole));
          i = end;
          continue;
        }
      }
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - i);
        const piece = chunk.subarray(i, i + take);
        // Held bytes are copied: the chunk's memory is the stream's once the call returns.
        if (this.held) this.held.parts.push(Buffer.from(piece));
        else out.push(piece);
        this.remaining -= take;
        i += take;
        if (this.remaining === 0 && this.held) out.push(this.judgeHeld());
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
      if (this.holds(type)) {
        if (len + 1 > this.max) return this.fail(out, `a statement of more than ${this.max} bytes`);
        this.held = { type, parts: [], head };
        if (this.remaining === 0) out.push(this.judgeHeld());
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

  private judgeHeld(): Buffer {
    const h = this.held;
    this.held = undefined;
    if (!h) return Buffer.alloc(0);
    return this.judge(h.type, Buffer.concat(h.parts), undefined, h.head);
  }

  /** What to forward for one whole message: itself (`whole`, or `head` then `body`), or its refusal. */
  private judge(type: number, body: Buffer, whole: Buffer | undefined, head?: Buffer): Buffer {
    if (type === MSG.functionCall && this.o.functionCalls) {
      this.o.onRefused(body.toString("latin1"), this.o.functionCalls);
      return frame(MSG.query, Buffer.from(`${this.o.functionCalls.sql}\0`, "utf8"));
    }
    const text = statementText({ type, body, truncated: false });
    if (text !== undefined) {
      for (const judge of this.judges) {
        const refusal = judge(text);
        if (!refusal) continue;
        this.o.onRefused(text, refusal);
        return replacement(type, body, refusal.sql, refusal.params ?? 0);
      }
    }
    if (this.o.onStatement) {
      const truncated = body.length > MAX_AUDITED_BYTES;
      this.o.onStatement(
        { type, body: truncated ? body.subarray(0, MAX_AUDITED_BYTES) : body, truncated },
        truncated ? undefined : text,
      );
    }
    return whole ?? Buffer.concat([head ?? Buffer.alloc(0), body]);
  }
}
