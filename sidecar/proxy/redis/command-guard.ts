import { randomBytes } from "node:crypto";
import type { StatementPolicy, UnparseablePolicy } from "../statement-policy.js";
import { CommandFramer } from "./command-framer.js";
import { type CommandTable, classifyRedis } from "./command-table.js";
import { encodeCommand, errorReply, RespProtocolError } from "./resp.js";
import { ReplyRewriter } from "./reply-rewriter.js";

/** The largest command the guard holds whole to judge it. */
export const MAX_GUARDED_COMMAND_BYTES = 16 * 1024 * 1024;
/** Refusals whose error reply has not come back yet (CLIENT REPLY OFF swallows some) kept at most. */
const MAX_PENDING = 1024;

/** A command refused: what the client is told and what the decision record says. */
export interface CommandRefusal {
  /** `NOPERM leasehold: command refused by policy (write command set)`. */
  readonly line: string;
  /** For the audit record: the code, kind and command name, never a key or a value. */
  readonly reason: string;
  readonly policies: readonly string[];
}

export interface CommandGuardOptions {
  readonly table: CommandTable;
  /** Absent: no lease or engine to decide with, every command is refused. */
  readonly policy: StatementPolicy | undefined;
  readonly unparseable: UnparseablePolicy;
  /** A command was refused; `command` is its encoding, for a digest only. */
  readonly onRefused: (command: Buffer, refusal: CommandRefusal) => void;
  /** The stream can no longer be followed: end the session. */
  readonly onUnjudgeable: (why: string) => void;
  /** @default MAX_GUARDED_COMMAND_BYTES */
  readonly maxCommandBytes?: number | undefined;
}

/**
 * Statement policy on a Redis session. Each command the client sends (pipelined or not, queued
 * in a MULTI or not) is held until whole and decided; a refused one never reaches the server:
 * it is replaced by a command the server does not know, named by a per-session nonce, so the
 * server itself answers it with an error at its very place in the reply stream (in a MULTI it
 * fails the transaction, as a queue-time error does: EXEC answers EXECABORT), and that error is
 * rewritten on its way back into the refusal. Fails closed: once the stream cannot be followed,
 * nothing more is forwarded.
 */
export class CommandGuard {
  private readonly framer: CommandFramer;
  private readonly marker = `leasehold-refused-${randomBytes(8).toString("hex")}-`;
  private readonly pending = new Map<string, string>();
  private seq = 0;
  private dead = false;
  private readonly replies: ReplyRewriter;

  constructor(private readonly o: CommandGuardOptions) {
    this.framer = new CommandFramer(o.maxCommandBytes ?? MAX_GUARDED_COMMAND_BYTES);
    this.replies = new ReplyRewriter((line) => this.refusalFor(line));
  }

  /** What to forward to the client for this chunk from the server (the refusals in their places). */
  down(chunk: Buffer): Buffer[] {
    if (this.dead) return [];
    try {
      return this.replies.push(chunk);
    } catch (err) {
      this.dead = true;
      this.o.onUnjudgeable(err instanceof RespProtocolError ? err.message : "an unreadable reply");
      return [];
    }
  }

  /** What to forward to the server for this chunk from the client. */
  push(chunk: Buffer): Buffer[] {
    if (this.dead) return [];
    let commands: Buffer[][];
    try {
      commands = this.framer.push(chunk);
    } catch (err) {
      this.dead = true;
      this.o.onUnjudgeable(err instanceof RespProtocolError ? err.message : "an unreadable command");
      return [];
    }
    return commands.map((args) => {
      const encoded = encodeCommand(args);
      const refusal = this.judge(args);
      if (!refusal) return encoded;
      this.o.onRefused(encoded, refusal);
      const name = `${this.marker}${this.seq++}`;
      if (this.pending.size >= MAX_PENDING) {
        const oldest = this.pending.keys().next().value;
        if (oldest !== undefined) this.pending.delete(oldest);
      }
      this.pending.set(name, refusal.line);
      return encodeCommand([name]);
    });
  }

  private judge(args: readonly Buffer[]): CommandRefusal | undefined {
    // QUIT only closes the connection: a client waits for its +OK, whatever the policy.
    if (args.length === 1 && args[0]?.toString("latin1").toLowerCase() === "quit") return undefined;
    const c = classifyRedis(this.o.table, args);
    if (!c.ok) {
      if (this.o.unparseable === "allow") return undefined;
      return {
        line: `NOPERM leasehold: command refused by policy (${c.error})`,
        reason: `NOPERM unparseable command refused (${c.error}; proxy.unparseable: deny)`,
        policies: [],
      };
    }
    if (!this.o.policy) {
      return {
        line: "NOPERM leasehold: command refused by policy (no policy to decide with)",
        reason: "NOPERM statement policy unavailable",
        policies: [],
      };
    }
    const v = this.o.policy.judgeClassified({ kind: c.kind, tables: [], command: c.command, keys: c.keys });
    if (v.allowed) return undefined;
    return { line: `NOPERM ${v.message}`, reason: v.reason, policies: v.policies };
  }

  /** The refusal a marker error stands for (the server's "unknown command '<marker>'"). */
  private refusalFor(line: string): Buffer | undefined {
    const at = line.indexOf(this.marker);
    if (at < 0) return undefined;
    const name = /^[\w-]+/.exec(line.slice(at))?.[0] ?? "";
    const refusal = this.pending.get(name);
    if (refusal === undefined) return undefined;
    this.pending.delete(name);
    return errorReply(refusal);
  }
}
