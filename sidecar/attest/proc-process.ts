import { readFileSync } from "node:fs";
import { join } from "node:path";

/** What `/proc/<pid>/stat` says of a process that ancestry and identity need. */
export interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  /** Field 22: clock ticks from boot to the process's start, as the kernel prints it. */
  readonly startTime: string;
}

/**
 * Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself hold
 * spaces and parentheses, so the fields are counted from the last `)`.
 */
export function parseStat(text: string): ProcStat | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  // After ") ": field 3 (state) is index 0, so field n is index n - 3.
  const rest = text.slice(close + 2).split(" ");
  const ppid = Number(rest[4 - 3]);
  const startTime = rest[22 - 3];
  if (!Number.isInteger(pid) || !Number.isInteger(ppid) || !startTime || !/^\d+$/.test(startTime)) {
    return undefined;
  }
  return { pid, ppid, startTime };
}

/** The stat of `pid`, or undefined when it is gone or unreadable. */
export function readStat(proc: string, pid: number): ProcStat | undefined {
  try {
    return parseStat(readFileSync(join(proc, String(pid), "stat"), "latin1"));
  } catch {
    return undefined;
  }
}

/** Effective uid and gid from `/proc/<pid>/status` (the `Uid:`/`Gid:` lines: real, effective, saved, fs). */
export function parseStatusIds(text: string): { uid: number; gid: number } | undefined {
  const uid = /^Uid:\s+\d+\s+(\d+)/m.exec(text)?.[1];
  const gid = /^Gid:\s+\d+\s+(\d+)/m.exec(text)?.[1];
  if (uid === undefined || gid === undefined) return undefined;
  return { uid: Number(uid), gid: Number(gid) };
}

/** The cgroup v2 path (the `0::` line); `/` on a host whose process is in the root cgroup. */
export function parseCgroup(text: string): string | undefined {
  for (const line of text.split("\n")) if (line.startsWith("0::")) return line.slice(3);
  return undefined;
}

/**
 * The container id in a cgroup path: a 64-hex segment as docker (`/docker/<id>`,
 * `docker-<id>.scope`), containerd and CRI-O (`cri-containerd-<id>.scope`, `crio-<id>.scope`)
 * name them. The last one wins (a nested container's).
 */
export function containerId(cgroup: string): string | undefined {
  let found: string | undefined;
  for (const m of cgroup.matchAll(/(?:^|[/:-])([0-9a-f]{64})(?=\.scope|\/|$)/g)) found = m[1];
  return found;
}
