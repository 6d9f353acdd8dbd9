import { randomBytes } from "node:crypto";
import type { PgTarget } from "./target.js";

/** The real cancel key of a backend connection, and where that backend is. */
export interface BackendCancelKey {
  readonly pid: number;
  readonly secret: number;
  readonly target: PgTarget;
}

interface Entry {
  readonly backend: BackendCancelKey;
  readonly resource: string;
}

/**
 * The cancel keys handed to clients, each standing for one backend's real key. The process id
 * is the backend's own, so `client.processID` is what `pg_backend_pid()` and NOTIFY say; the
 * secret is the proxy's, so a client never holds the key the server would accept, and a key
 * dies with its session. A CancelRequest is routed by (pid, secret) and by the resource of
 * the listener it came to.
 */
export class CancelKeys {
  private readonly keys = new Map<string, Entry>();

  /** A fresh client-facing key for `backend`, reached through `resource`'s listener. */
  issue(backend: BackendCancelKey, resource: string): { pid: number; secret: number } {
    for (;;) {
      const pid = backend.pid;
      const secret = randomBytes(4).readInt32BE(0);
      const k = `${pid}:${secret}`;
      if (this.keys.has(k)) continue;
      this.keys.set(k, { backend, resource });
      return { pid, secret };
    }
  }

  /** The backend a client's key stands for, if it was issued for `resource`. */
  lookup(pid: number, secret: number, resource: string): BackendCancelKey | undefined {
    const e = this.keys.get(`${pid}:${secret}`);
    return e?.resource === resource ? e.backend : undefined;
  }

  revoke(pid: number, secret: number): void {
    this.keys.delete(`${pid}:${secret}`);
  }
}
