import { COM, MAX_PAYLOAD } from "./packets.js";

/** A statement the client sent (COM_QUERY or COM_STMT_PREPARE), for the statement audit. */
export interface MysqlStatement {
  readonly command: number;
  /** The text, or its first `maxCapture` bytes when `truncated`. */
  readonly text: Buffer;
  readonly truncated: boolean;
}

export interface CommandGuardOptions {
  /** A command the session must not pass on (COM_CHANGE_USER, COM_MULTI): nothing of it is forwarded. */
  readonly onForbidden: (command: number) => void;
  /** Sees each statement, when the session audits them. */
  readonly onStatement?: ((s: MysqlStatement) => void) | undefined;
  readonly maxCapture?: number;
}

const FORBIDDEN: ReadonlySet<number> = new Set([COM.changeUser, COM.multi]);
const STATEMENTS: ReadonlySet<number> = new Set([COM.query, COM.stmtPrepare]);

/**
 * Follows packet boundaries in the client's spliced stream and stops the commands that could
 * log the session in as someone else. Every packet with sequence id 0 that does not continue a
 * 16 MiB one is taken for a command: that is what the server reads as one, and where it does not
 * (data of LOAD DATA LOCAL after the sequence id wrapped) the guard errs on the side of stopping.
 * A command's header is held back until its first byte is known, so no byte of a forbidden one
 * reaches the server.
 */
export class CommandGuard {
  /** The start of a packet whose header (or command byte) has not all arrived, not yet forwarded. */
  private held: Buffer | undefined;
  private remaining = 0;
  /** The packet being read is 0xffffff bytes long: the next one continues it. */
  private continues = false;
  private stopped = false;
  private capture: { command: number; parts: Buffer[]; have: number; truncated: boolean } | undefined;
  private readonly maxCapture: number;

  constructor(private readonly o: CommandGuardOptions) {
    this.maxCapture = o.maxCapture ?? 1024 * 1024;
  }

  /** What to forward for `chunk` (nothing more once a forbidden command was seen). */
  push(chunk: Buffer): Buffer[] {
    if (this.stopped) return [];
    const data = this.held ? Buffer.concat([this.held, chunk]) : chunk;
    this.held = undefined;
    let i = 0;
    let end = data.length;
    while (i < data.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, data.length - i);
        if (this.capture) this.keep(data.subarray(i, i + take));
        this.remaining -= take;
        i += take;
        if (this.remaining === 0 && this.capture) this.emit();
        continue;
      }
      if (data.length - i < 4) {
        this.hold(data, i);
        end = i;
        break;
      }
      const len = data.readUIntLE(i, 3);
      const isCommand = data[i + 3] === 0 && !this.continues && len > 0;
      if (isCommand && data.length - i < 5) {
        this.hold(data, i);
        end = i;
        break;
      }
      this.continues = len === MAX_PAYLOAD;
      i += 4;
      this.remaining = len;
      const command = isCommand ? data[i] : undefined;
      if (command === undefined) continue;
      if (FORBIDDEN.has(command)) {
        this.stopped = true;
        this.o.onForbidden(command);
        return i - 4 > 0 ? [data.subarray(0, i - 4)] : [];
      }
      if (this.o.onStatement && STATEMENTS.has(command)) {
        this.capture = { command, parts: [], have: 0, truncated: false };
        i += 1;
        this.remaining -= 1;
        if (this.remaining === 0) this.emit();
      }
    }
    if (end === 0) return [];
    return [end === data.length ? data : data.subarray(0, end)];
  }

  private hold(data: Buffer, from: number): void {
    this.held = Buffer.from(data.subarray(from));
  }

  private keep(part: Buffer): void {
    const c = this.capture;
    if (!c) return;
    const room = this.maxCapture - c.have;
    const kept = part.length > room ? part.subarray(0, Math.max(0, room)) : part;
    if (kept.length < part.length) c.truncated = true;
    if (kept.length > 0) c.parts.push(Buffer.from(kept));
    c.have += kept.length;
  }

  private emit(): void {
    const c = this.capture;
    this.capture = undefined;
    if (!c) return;
    // Text continued in further packets is not followed: the record says it is cut.
    this.o.onStatement?.({
      command: c.command,
      text: Buffer.concat(c.parts),
      truncated: c.truncated || this.continues,
    });
  }
}
