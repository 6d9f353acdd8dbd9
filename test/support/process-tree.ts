import { readFile } from "node:fs/promises";
import type { ProcessTree } from "../../sidecar/attest/types.js";

/*
 * A ProcessTree read from the kernel's own /proc/<pid>/stat, for the service tests of issue 22
 * (`bindCaller: [process]`). Kept apart so the sidecar's own implementation (sidecar/attest/)
 * can take its place.
 */

/** Parent pid and start time (field 22) of a process, or undefined once it is gone. */
export async function procStat(pid: number): Promise<{ ppid: number; startTime: string } | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ")".
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const ppid = Number(rest[1]);
  const startTime = rest[19];
  if (!Number.isInteger(ppid) || startTime === undefined) return undefined;
  return { ppid, startTime };
}

/** Walks the parent chain of `pid` up to the ancestor, each process named by pid and start time. */
export const procProcessTree: ProcessTree = {
  async isSameOrDescendant(pid, startTime, ancestorPid, ancestorStart) {
    let cur = pid;
    let stat = await procStat(cur);
    if (stat === undefined || stat.startTime !== startTime) return false;
    for (let depth = 0; depth < 4096; depth++) {
      if (cur === ancestorPid) return stat.startTime === ancestorStart;
      if (stat.ppid <= 0) return false;
      cur = stat.ppid;
      stat = await procStat(cur);
      if (stat === undefined) return false;
    }
    return false;
  },
};
