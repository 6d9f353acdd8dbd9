import { readdirSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";

/** How many pids are looked at between two turns of the event loop. */
const BATCH = 32;
/** How many recently found pids are tried first. */
const RECENT = 64;

/** Why no process was found holding a socket. */
export type OwnerMiss = "not_found" | "unreadable";

/**
 * Finds the process that holds a socket inode by its `/proc/<pid>/fd` links (`socket:[inode]`).
 * Pids that held a peer socket recently are tried first (an agent keeps connecting), then the
 * pids owned by the socket's uid, newest pid first (a freshly started `psql`), then the rest
 * (a process that made itself non-dumpable has a root-owned `/proc/<pid>`). The scan yields to
 * the event loop every {@link BATCH} pids.
 */
export class SocketOwnerFinder {
  private readonly recent: number[] = [];

  constructor(private readonly proc: string) {}

  async find(inode: number, uid: number): Promise<{ pid: number } | { miss: OwnerMiss }> {
    const link = `socket:[${inode}]`;
    const tried = new Set<number>();
    let unreadable = false;
    const tryPid = (pid: number): boolean => {
      if (tried.has(pid)) return false;
      tried.add(pid);
      const r = this.holds(pid, link);
      if (r === "unreadable") unreadable = true;
      return r === true;
    };
    for (const pid of this.recent) if (tryPid(pid)) return this.found(pid);
    const pids = readdirSync(this.proc)
      .map(Number)
      .filter((pid) => Number.isInteger(pid) && pid > 0 && !tried.has(pid))
      .sort((a, b) => b - a);
    // The uid's own processes first, each looked at as soon as its owner is known.
    const others: number[] = [];
    let n = 0;
    for (const pid of pids) {
      let owner: number;
      try {
        owner = statSync(join(this.proc, String(pid))).uid;
      } catch {
        continue;
      }
      if (owner !== uid) {
        others.push(pid);
        continue;
      }
      if (tryPid(pid)) return this.found(pid);
      if (++n % BATCH === 0) await new Promise((r) => setImmediate(r));
    }
    for (const pid of others) {
      if (tryPid(pid)) return this.found(pid);
      if (++n % BATCH === 0) await new Promise((r) => setImmediate(r));
    }
    return { miss: unreadable ? "unreadable" : "not_found" };
  }

  private found(pid: number): { pid: number } {
    const i = this.recent.indexOf(pid);
    if (i >= 0) this.recent.splice(i, 1);
    this.recent.unshift(pid);
    if (this.recent.length > RECENT) this.recent.pop();
    return { pid };
  }

  /** Whether `pid` has an fd linked to `link`; "unreadable" when its fd table cannot be read. */
  private holds(pid: number, link: string): boolean | "unreadable" {
    const dir = join(this.proc, String(pid), "fd");
    let fds: string[];
    try {
      fds = readdirSync(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === "EACCES" || code === "EPERM" ? "unreadable" : false;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(join(dir, fd)) === link) return true;
      } catch {
        // The fd closed while we looked.
      }
    }
    return false;
  }
}
