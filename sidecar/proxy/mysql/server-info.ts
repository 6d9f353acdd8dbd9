import type { Greeting } from "./packets.js";
import { CAP } from "./packets.js";
import { readServerGreeting } from "./backend-login.js";
import type { MysqlProxyTarget } from "./target.js";

/** What the listener tells clients of the server before it has seen it (a MySQL 8 server's terms). */
const FALLBACK: Omit<Greeting, "nonce" | "connectionId" | "authPlugin"> = {
  serverVersion: "8.0.0-leasehold",
  capabilities:
    CAP.longPassword |
    CAP.foundRows |
    CAP.longFlag |
    CAP.connectWithDb |
    CAP.localFiles |
    CAP.protocol41 |
    CAP.transactions |
    CAP.secureConnection |
    CAP.multiStatements |
    CAP.multiResults |
    CAP.psMultiResults |
    CAP.pluginAuth |
    CAP.connectAttrs |
    CAP.pluginAuthLenenc |
    CAP.sessionTrack |
    CAP.deprecateEof,
  charset: 45,
  status: 2,
  mariadbCapabilities: 0,
};

export type ServerTerms = typeof FALLBACK;

/**
 * The server terms (version, capabilities, MariaDB's extended capabilities, character set) of
 * each backend, as its last greeting gave them: the listener greets clients with them, so that
 * what a client negotiates with the listener is what the server accepts too. The first client of
 * a backend waits for one greeting read from a connection closed at once.
 */
export class ServerInfo {
  private readonly known = new Map<string, ServerTerms>();
  private readonly probing = new Map<string, Promise<ServerTerms>>();

  private static key(t: MysqlProxyTarget): string {
    return `${t.host}:${t.port}`;
  }

  /**
   * The backend's terms; the first call reads a greeting, bounded by `timeoutMs` and by no
   * client's connection (a client that goes away must not cut the read short for the others).
   */
  async terms(target: MysqlProxyTarget, timeoutMs: number): Promise<ServerTerms> {
    const k = ServerInfo.key(target);
    const have = this.known.get(k);
    if (have) return have;
    let p = this.probing.get(k);
    if (!p) {
      p = readServerGreeting(target, AbortSignal.timeout(timeoutMs)).then(
        (g) => {
          this.note(target, g);
          return this.known.get(k) ?? FALLBACK;
        },
        () => FALLBACK,
      );
      this.probing.set(k, p);
      void p.finally(() => this.probing.delete(k));
    }
    return p;
  }

  /** Keeps what a greeting of the server said. */
  note(target: MysqlProxyTarget, g: Greeting): void {
    this.known.set(ServerInfo.key(target), {
      serverVersion: g.serverVersion,
      capabilities: g.capabilities,
      charset: g.charset,
      status: g.status,
      mariadbCapabilities: g.mariadbCapabilities,
    });
  }
}
