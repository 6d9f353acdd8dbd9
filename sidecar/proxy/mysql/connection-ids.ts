import { COM } from "./packets.js";
import { scanMysql } from "./sql-scan.js";

/** A session's two ids: the listener's (its greeting's connection id) and the server's thread id. */
interface Entry {
  readonly leaseId: string;
  readonly backend: number;
}

/**
 * The connection ids the MySQL listeners gave their clients, with each session's lease and
 * backend thread id. A client sees the listener's id (its greeting went out before the server
 * was logged in to), so `KILL QUERY <id>` is mapped here to the backend thread, and only for a
 * session of the same lease; CONNECTION_ID() gives the backend's id, which is accepted too.
 */
export class MysqlConnectionIds {
  private readonly byListener = new Map<number, Entry>();

  add(listenerId: number, leaseId: string, backend: number): void {
    this.byListener.set(listenerId, { leaseId, backend });
  }

  remove(listenerId: number): void {
    this.byListener.delete(listenerId);
  }

  /** The backend thread `id` names for a session of `leaseId`, or undefined (none of its own). */
  resolve(id: number, leaseId: string): number | undefined {
    const own = this.byListener.get(id);
    if (own?.leaseId === leaseId) return own.backend;
    for (const e of this.byListener.values()) if (e.leaseId === leaseId && e.backend === id) return id;
    return undefined;
  }
}

const KILL = /^\s*KILL\s+(?:(HARD|SOFT)\s+)?(?:(CONNECTION|QUERY)\s+)?(\d{1,10})\s*$/i;

/**
 * A kill the client sends, mapped to its own session's backend: COM_PROCESS_KILL's id or a
 * `KILL [HARD|SOFT] [CONNECTION|QUERY] n` statement (alone in its COM_QUERY). `pass`: not a
 * kill; `{ payload }`: the command to send instead; `{ unknown }`: the id names no session of
 * the lease (answered as the server answers an unknown thread, 1094).
 */
export function mapKill(
  command: number,
  body: Buffer,
  resolve: (id: number) => number | undefined,
): "pass" | { readonly payload: Buffer } | { readonly unknown: string } {
  if (command === COM.processKill) {
    if (body.length < 4) return { unknown: "?" };
    const id = body.readUInt32LE(0);
    const backend = resolve(id);
    if (backend === undefined) return { unknown: String(id) };
    const out = Buffer.alloc(5);
    out[0] = COM.processKill;
    out.writeUInt32LE(backend >>> 0, 1);
    return { payload: out };
  }
  if (command !== COM.query) return "pass";
  const text = body.toString("utf8");
  if (!/kill/i.test(text)) return "pass";
  const scan = scanMysql(text);
  if (!scan.ok) return /\bkill\b/i.test(text) ? { unknown: "?" } : "pass";
  const kills = scan.statements.filter((s) => /^\s*KILL\b/i.test(s.text));
  if (kills.length === 0) return "pass";
  const m = scan.statements.length === 1 ? KILL.exec(kills[0]?.text ?? "") : null;
  if (!m) return { unknown: "?" };
  const backend = resolve(Number(m[3]));
  if (backend === undefined) return { unknown: m[3] ?? "?" };
  const sql = ["KILL", m[1], m[2], String(backend)].filter(Boolean).join(" ");
  return { payload: Buffer.concat([Buffer.from([COM.query]), Buffer.from(sql, "latin1")]) };
}
