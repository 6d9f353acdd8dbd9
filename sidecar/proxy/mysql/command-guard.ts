import { COM, MAX_PAYLOAD, packet } from "./packets.js";

/** A statement the client sent (COM_QUERY or COM_STMT_PREPARE), for the statement audit. */
export interface MysqlStatement {
  readonly command: number;
  /** The text, or its first `maxCapture` bytes when `truncated`. */
  readonly text: Buffer;
  readonly truncated: boolean;
}

/** What becomes of a command under statement policy. */
export type CommandVerdict = "pass" | "drop" | { readonly replace: Buffer };

export interface CommandGuardOptions {
  /** A command the session must not pass on (COM_CHANGE_USER, COM_MULTI): nothing of it is forwarded. */
  readonly onForbidden: (command: number) => void;
  /**
   * Judges each whole statement before any byte of it is forwarded; true refuses it (nothing
   * more is forwarded, `onRefused` is called). Statements longer than one packet (16 MiB) are
   * refused unread. Absent: statements are forwarded as they arrive.
   */
  readonly refuse?: ((text: string) => boolean) | undefined;
  readonly onRefused?: ((s: MysqlStatement) => void) | undefined;
  /**
   * Under statement policy: judges every command packet, held back whole until it can be (a
   * command over one packet, 16 MiB, ends the session unread: `onOversized`). `pass` forwards it;
   * a replacement payload goes to the server in its place (sequence id 0); `drop` forwards
   * nothing. Absent: only statements are held, and only when `refuse` is set.
   */
  readonly judge?: ((command: number, body: Buffer) => CommandVerdict) | undefined;
  readonly onOversized?: ((command: number) => void) | undefined;
  /** Which commands `judge` sees (the others pass as they arrive). @default all */
  readonly holds?: ((command: number) => boolean) | undefined;
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
  /** A statement packet held back whole until it can be judged. */
  private pending: { parts: Buffer[]; have: number; need: number } | undefined;
  private readonly maxCapture: number;
  /** The last command judged was passed as it is. */
  private passed = true;

  constructor(private readonly o: CommandGuardOptions) {
    this.maxCapture = o.maxCapture ?? 1024 * 1024;
  }

  /** What to forward for `chunk` (nothing more once a forbidden command was seen). */
  push(chunk: Buffer): Buffer[] {
    if (this.stopped) return [];
    const p = this.pending;
    if (p) {
      p.parts.push(chunk);
      p.have += chunk.length;
      if (p.have < p.need) return [];
      this.pending = undefined;
      const all = p.parts.length === 1 ? (p.parts[0] as Buffer) : Buffer.concat(p.parts);
      const judged = this.judge(all.subarray(0, p.need));
      if (!judged) return [];
      const after = all.subarray(p.need);
      return after.length > 0 ? [...judged, ...this.push(after)] : judged;
    }
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
      if ((this.o.judge && (this.o.holds?.(command) ?? true)) || (this.o.refuse && STATEMENTS.has(command))) {
        const start = i - 4;
        if (len === MAX_PAYLOAD) {
          this.stopped = true;
          if (this.o.refuse && STATEMENTS.has(command))
            this.o.onRefused?.({ command, text: Buffer.alloc(0), truncated: true });
          else this.o.onOversized?.(command);
          return start > 0 ? [data.subarray(0, start)] : [];
        }
        if (data.length - start < 4 + len) {
          this.pending = { parts: [data.subarray(start)], have: data.length - start, need: 4 + len };
          this.remaining = 0;
          end = start;
          break;
        }
        const judged = this.judge(data.subarray(start, start + 4 + len));
        if (!judged) return start > 0 ? [data.subarray(0, start)] : [];
        this.remaining = 0;
        i = start + 4 + len;
        if (this.passed) continue;
        // Replaced or dropped: what came before goes as it is, then the verdict, then the rest.
        const before = start > 0 ? [data.subarray(0, start)] : [];
        const after = i < data.length ? this.push(data.subarray(i)) : [];
        return [...before, ...judged, ...after];
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

  /** Judges one whole command packet: what to forward for it, undefined (the guard stopped) when the session ends. */
  private judge(whole: Buffer): Buffer[] | undefined {
    const command = whole[4] ?? 0;
    const body = whole.subarray(5);
    const statement = STATEMENTS.has(command);
    const s: MysqlStatement = { command, text: body, truncated: false };
    if (statement && this.o.refuse?.(body.toString("utf8"))) {
      this.stopped = true;
      this.o.onRefused?.(s);
      return undefined;
    }
    const verdict = this.o.judge?.(command, body) ?? "pass";
    this.passed = verdict === "pass";
    if (verdict === "drop") return [];
    if (verdict !== "pass") return [packet(0, verdict.replace)];
    if (statement) this.o.onStatement?.(s);
    return [whole];
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
