import { loadLibc } from "./libc.js";

/** The credentials of a Unix-socket peer, as the kernel recorded them at `connect()`. */
export interface PeerCred {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

/**
 * `getsockopt(fd, SOL_SOCKET, SO_PEERCRED)` on a connected Unix socket: `struct ucred`
 * (pid, uid, gid). Node has no call for it; koffi calls libc directly. A peer in a pid
 * namespace this one cannot see has pid 0.
 * @throws Error when libc cannot be loaded or the call fails.
 */
export function peerCred(fd: number): PeerCred {
  const libc = loadLibc();
  if (libc instanceof Error) throw libc;
  const buf = Buffer.alloc(12);
  const len = [12];
  if (libc.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, buf, len) !== 0 || len[0] !== 12) {
    throw new Error("getsockopt(SO_PEERCRED) failed");
  }
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}

const SO_PEERPIDFD = 77;

/** Whether this kernel answers SO_PEERPIDFD (Linux 6.5 and later). */
export function kernelHasPeerPidfd(release: string): boolean {
  const [major = 0, minor = 0] = release.split(/[.-]/).map(Number);
  return major > 6 || (major === 6 && minor >= 5);
}

/**
 * A pidfd for the very process that connected (`SO_PEERPIDFD`): unlike the pid, it cannot come
 * to name another process. Undefined when that process has exited (or the call fails); the
 * caller closes the descriptor.
 */
export function peerPidfd(fd: number): number | undefined {
  const libc = loadLibc();
  if (libc instanceof Error) return undefined;
  const buf = Buffer.alloc(4);
  const len = [4];
  if (libc.getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, buf, len) !== 0) return undefined;
  return buf.readInt32LE(0);
}
