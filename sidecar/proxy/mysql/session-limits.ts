import { HandshakeRefusal } from "../handshake-refusal.js";
import { type SessionLimiter, type SessionLimitsOptions, sessionLimiter } from "../session-limits.js";
import { MAX_PAYLOAD } from "./packets.js";

/** ER_USER_LIMIT_REACHED: a login of a lease already past `proxy.limits.bytesReturned`. */
const ER_USER_LIMIT_REACHED = 1226;

/** A MySQL session's side of `proxy.limits` (session-limits.ts), or undefined without limits. */
export function mysqlLimiter(
  o: Pick<SessionLimitsOptions, "ctx" | "record" | "end">,
): SessionLimiter | undefined {
  return sessionLimiter({
    ...o,
    tool: "mysql",
    refusal: (why) =>
      new HandshakeRefusal(String(ER_USER_LIMIT_REACHED), why, `${ER_USER_LIMIT_REACHED} ${why}`),
    count: mysqlStatementCounter(),
  });
}

/** COM_QUERY and COM_STMT_EXECUTE: what runs a statement. */
const RUNS: ReadonlySet<number> = new Set([0x03, 0x17]);

/**
 * Counts the statements in a MySQL client stream for `proxy.limits`: each COM_QUERY and each
 * COM_STMT_EXECUTE (a command is a packet with sequence id 0 that does not continue a 16 MiB
 * one). Returns a function from a chunk to how many it starts.
 */
export function mysqlStatementCounter(): (chunk: Buffer) => number {
  const header = Buffer.alloc(4);
  let have = 0;
  let remaining = 0;
  let continues = false;
  let first = false;
  return (chunk) => {
    let n = 0;
    let i = 0;
    while (i < chunk.length) {
      if (remaining > 0) {
        if (first && RUNS.has(chunk[i] as number)) n++;
        first = false;
        const take = Math.min(remaining, chunk.length - i);
        remaining -= take;
        i += take;
        continue;
      }
      header[have++] = chunk[i++] as number;
      if (have < 4) continue;
      have = 0;
      remaining = header.readUIntLE(0, 3);
      first = header[3] === 0 && !continues;
      continues = remaining === MAX_PAYLOAD;
    }
    return n;
  };
}
