import { createHash } from "node:crypto";
import { readFile, readlink } from "node:fs/promises";
import type { AttestedCaller } from "../../sidecar/attest/types.js";

/*
 * The attestation of a real process read straight from /proc, for the service tests of issue 22:
 * what the sidecar's attestor (sidecar/attest/) finds for a connection's peer, without the socket.
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

function idLine(status: string, name: "Uid" | "Gid"): number {
  const line = status.split("\n").find((l) => l.startsWith(`${name}:`)) ?? "";
  // Real, effective, saved, filesystem: the kernel's peer credentials carry the effective id.
  return Number(line.split(/\s+/)[2]);
}

/** Who process `pid` is: uid, gid, start time, executable digest and cgroup v2 path. */
export async function attestPid(pid: number): Promise<AttestedCaller> {
  const [status, exe, bytes, cgroups, stat] = await Promise.all([
    readFile(`/proc/${pid}/status`, "utf8"),
    readlink(`/proc/${pid}/exe`),
    readFile(`/proc/${pid}/exe`),
    readFile(`/proc/${pid}/cgroup`, "utf8"),
    procStat(pid),
  ]);
  if (stat === undefined) throw new Error(`process ${pid} is gone`);
  const v2 = cgroups.split("\n").find((l) => l.startsWith("0::"));
  return {
    attested: true,
    transport: "tcp",
    uid: idLine(status, "Uid"),
    gid: idLine(status, "Gid"),
    pid,
    start_time: stat.startTime,
    exe,
    exe_sha256: createHash("sha256").update(bytes).digest("hex"),
    cgroup: v2 === undefined ? "" : v2.slice(3),
  };
}
