import { randomBytes, randomInt } from "node:crypto";
import type { PgTarget } from "./target.js";

/** The real cancel key of a backend connection, and where that backend is. */
export interface BackendCancelKey {
  readonly pid: number;
  readonly secret: number;
  readonly target: PgTarget;
}

/**
 * The cancel keys handed to clients, each standing for one backend's real key. Clients never
 * see the backend's process id or secret, and a key dies with its session.
 */
export class CancelKeys {
  private readonly keys = new Map<string, BackendCancelKey>();

  /** A fresh client-facing key for `backend`. */
  issue(backend: BackendCancelKey): { pid: number; secret: number } {
    for (;;) {
      const pid = randomInt(1, 2 ** 31 - 1);
      const secret = randomBytes(4).readInt32BE(0);
      const k = `${pid}:${secret}`;
      if (this.keys.has(k)) continue;
      this.keys.set(k, backend);
      return { pid, secret };
    }
  }

  lookup(pid: number, secret: number): BackendCancelKey | undefined {
    return this.keys.get(`${pid}:${secret}`);
  }

  revoke(pid: number, secret: number): void {
    this.keys.delete(`${pid}:${secret}`);
  }
}
