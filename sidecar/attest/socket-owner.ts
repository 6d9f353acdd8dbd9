import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";

/** How many pids are looked at between two turns of the event loop. */
const BATCH = 32;
/** How many recently found pids are tried first. */
const RECENT = 64;
/** How many socket descriptors of one recent pid are remembered (see `holds`). */
const MAX_SEEN = 4096;

/** Why no process was found holding a socket. */
export type OwnerMiss = "not_found" | "unreadable";

/**
 * Finds the process that holds a socket inode by its `/proc/<pid>/fd` links (`socket:[inode]`).
 * Pids that held a peer socket recently are tried first (an agent keeps connecting), then the
 * pids owned by the socket's uid, newest first (a freshly started `psql`), then the rest
 * (a process that made itself non-dumpable has a root-owned `/proc/<pid>`). The scan yields to
 * the event loop every {@link BATCH} pids.
 *
 * For a recent pid, the descriptor each socket had at its last scan is remembered, and that one
 * link is read first: an agent that opens several connections at once has them all attested for
 * one scan of its descriptors, not one each. A remembered descriptor only says where to look
 * first; the link read now decides, so the answer is the one the full scan would give.
 */
export class SocketOwnerFinder {
  private readonly recent: number[] = [];
  /** For each recent pid: `socket:[inode]` → the descriptor that linked to it at its last scan. */
  private readonly seen = new Map<number, Map<string, string>>();
  private pidMax: number | undefined;

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
    for (const pid of [...this.recent]) if (tryPid(pid)) return this.found(pid);
    const age = this.pidAge();
    const pids = readdirSync(this.proc)
      .map(Number)
      .filter((pid) => Number.isInteger(pid) && pid > 0 && !tried.has(pid))
      .sort((a, b) => age(a) - age(b));
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

  /**
   * How many pids were handed out since `pid` was: pids are allocated upwards from the last one
   * (`/proc/loadavg`'s last field, in this pid namespace) and wrap at `pid_max`, so after a wrap
   * the newest processes have the smallest pids.
   */
  private pidAge(): (pid: number) => number {
    let last = 0;
    let max = 4194304;
    try {
      last = Number(readFileSync(join(this.proc, "loadavg"), "latin1").trim().split(" ").at(-1)) || 0;
      this.pidMax ??= Number(readFileSync(join(this.proc, "sys/kernel/pid_max"), "latin1").trim()) || max;
      max = this.pidMax;
    } catch {
      // Without them: highest pid first.
    }
    const top = Math.max(last, 0);
    return (pid) => (((top - pid) % max) + max) % max;
  }

  private found(pid: number): { pid: number } {
    const i = this.recent.indexOf(pid);
    if (i >= 0) this.recent.splice(i, 1);
    this.recent.unshift(pid);
    if (this.recent.length > RECENT) {
      const dropped = this.recent.pop();
      if (dropped !== undefined) this.seen.delete(dropped);
    }
    return { pid };
  }

  private forget(pid: number): void {
    const i = this.recent.indexOf(pid);
    if (i >= 0) this.recent.splice(i, 1);
    this.seen.delete(pid);
  }

  /** Whether `pid` has an fd linked to `link`; "unreadable" when its fd table cannot be read. */
  private holds(pid: number, link: string): boolean | "unreadable" {
    const dir = join(this.proc, String(pid), "fd");
    const prefix = `${dir}/`;
    const hint = this.seen.get(pid)?.get(link);
    if (hint !== undefined) {
      try {
        if (readlinkSync(prefix + hint) === link) return true;
      } catch {
        // Closed since: the scan below decides.
      }
    }
    let fds: string[];
    try {
      fds = readdirSync(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") this.forget(pid);
      return code === "EACCES" || code === "EPERM" ? "unreadable" : false;
    }
    // Only a recent pid's sockets are remembered (it is the one asked about again).
    const remember = this.recent.includes(pid) ? new Map<string, string>() : undefined;
    let found = false;
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(prefix + fd);
      } catch {
        continue; // The fd closed while we looked.
      }
      if (target === link) {
        found = true;
        if (!remember) break;
      }
      if (remember && remember.size < MAX_SEEN && target.startsWith("socket:[")) remember.set(target, fd);
    }
    if (remember) this.seen.set(pid, remember);
    return found;
  }
}
