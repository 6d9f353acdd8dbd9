import { readStat } from "./proc-process.js";
import type { ProcessTree } from "./types.js";

/** How many parents are followed before giving up. */
const MAX_DEPTH = 64;

/**
 * Ancestry from `/proc/<pid>/stat` (ppid and start time). A process whose parent ended was
 * re-parented (to init or a subreaper) and is no longer counted as its descendant.
 */
export class ProcProcessTree implements ProcessTree {
  constructor(private readonly proc = "/proc") {}

  async isSameOrDescendant(
    pid: number,
    startTime: string,
    ancestorPid: number,
    ancestorStart: string,
  ): Promise<boolean> {
    let cur = readStat(this.proc, pid);
    if (!cur || cur.startTime !== startTime) return false;
    for (let depth = 0; depth <= MAX_DEPTH; depth++) {
      if (cur.pid === ancestorPid) return cur.startTime === ancestorStart;
      if (cur.ppid <= 0) return false;
      const parent = readStat(this.proc, cur.ppid);
      // A parent cannot start after its child: a later start is a reused pid.
      if (!parent || BigInt(parent.startTime) > BigInt(cur.startTime)) return false;
      cur = parent;
    }
    return false;
  }
}
