import { SocketReader } from "../socket-reader.js";
import { loginToMysql } from "./backend-login.js";
import { CAP, COM, packet, readPacket } from "./packets.js";
import type { MysqlProxyTarget } from "./target.js";

/** What a session keeps to end its backend's statement when the lease ends. */
export interface BackendKill {
  readonly target: MysqlProxyTarget;
  readonly username: string;
  readonly password: string;
  /** The backend connection's thread id (its greeting's connection id). */
  readonly threadId: number;
}

const SIDE_TERMS = {
  capabilities: CAP.longPassword | CAP.protocol41 | CAP.secureConnection | CAP.transactions | CAP.pluginAuth,
  mariadbCapabilities: 0,
  maxPacket: 16 * 1024 * 1024,
  charset: 45,
  database: undefined,
  attrs: undefined,
};

/**
 * Ends a backend connection and the statement it is running: the server notices a closed
 * client only when it next reads or writes, so a `SELECT SLEEP(3600)` would run on as the
 * account after the lease ended. A short side connection as the same account sends
 * COM_PROCESS_KILL for the thread (an account may kill its own threads). Best effort, within
 * `timeoutMs`; never rejects (the account's password may already have been rotated).
 */
export async function killBackend(k: BackendKill, timeoutMs: number): Promise<boolean> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  timer.unref();
  try {
    const login = await loginToMysql({
      target: k.target,
      username: k.username,
      password: k.password,
      terms: SIDE_TERMS,
      maxMessageBytes: 64 * 1024,
      signal: abort.signal,
      onGreeting: () => undefined,
    });
    const sock = login.socket;
    sock.on("error", () => undefined);
    abort.signal.addEventListener("abort", () => sock.destroy(), { once: true });
    try {
      const reader = new SocketReader(sock, 64 * 1024);
      sock.resume();
      const id = Buffer.alloc(5);
      id[0] = COM.processKill;
      id.writeUInt32LE(k.threadId >>> 0, 1);
      sock.write(packet(0, id));
      const answer = await readPacket(reader, 64 * 1024);
      sock.write(packet(0, Buffer.from([COM.quit])));
      return answer.payload[0] === 0x00;
    } finally {
      sock.end();
      setTimeout(() => sock.destroy(), 1000).unref();
    }
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
