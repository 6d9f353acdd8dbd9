import { closeSync, readFileSync, readlinkSync } from "node:fs";
import { release } from "node:os";
import { Socket } from "node:net";
import { join } from "node:path";
import { ExeDigests } from "./exe-digest.js";
import { kernelHasPeerPidfd, peerCred, peerPidfd } from "./peer-cred.js";
import { findRow, isLoopback, type PeerSocket, procForms } from "./proc-net.js";
import { containerId, parseCgroup, parseStatusIds, readStat } from "./proc-process.js";
import { diagLookup } from "./sock-diag.js";
import { SocketOwnerFinder } from "./socket-owner.js";
import type {
  AttestedCaller,
  CallerAttestation,
  CallerAttestor,
  CallerTransport,
  UnattestedCaller,
} from "./types.js";

export interface ProcCallerAttestorOptions {
  /** Where procfs is mounted. @default "/proc" */
  readonly proc?: string;
  /** The host's platform; anything but `linux` attests nobody. @default process.platform */
  readonly platform?: NodeJS.Platform;
  /**
   * Find a TCP peer's socket with the kernel's sock_diag (one hash lookup) before reading
   * `/proc/net/tcp{,6}` (a walk of every bucket, a millisecond or more). @default true
   */
  readonly sockDiag?: boolean;
}

/** What a stream handle exposes on Unix: its file descriptor and its kind (`TCP`, `Pipe`). */
interface Handle {
  readonly fd?: number;
  readonly constructor?: { readonly name?: string };
}

function unattested(transport: CallerTransport, reason: string): UnattestedCaller {
  return { attested: false, transport, reason };
}

/**
 * The Linux attestor. A loopback TCP peer is found in `/proc/net/tcp{,6}` (the row whose local
 * end is our remote end and the other way round: its inode), then in `/proc/<pid>/fd`; a
 * Unix-socket peer by `SO_PEERCRED`. Then `/proc/<pid>` gives the rest. Nothing is done until
 * `attest` is called; its answer is kept for the socket's life.
 */
export class ProcCallerAttestor implements CallerAttestor {
  private readonly proc: string;
  private readonly linux: boolean;
  private readonly cache = new WeakMap<object, Promise<CallerAttestation>>();
  private readonly owners: SocketOwnerFinder;
  private readonly digests = new ExeDigests();
  private sockDiag: boolean;
  private readonly peerPidfd: boolean;
  private boot: string | undefined;

  constructor(opts: ProcCallerAttestorOptions = {}) {
    this.proc = opts.proc ?? "/proc";
    this.linux = (opts.platform ?? process.platform) === "linux";
    this.owners = new SocketOwnerFinder(this.proc);
    this.sockDiag = opts.sockDiag ?? true;
    this.peerPidfd = this.linux && kernelHasPeerPidfd(release());
  }

  attest(socket: Socket): Promise<CallerAttestation> {
    // fastify's inject() hands a stand-in object, or none.
    const key: object | undefined = socket as Socket | undefined;
    if (!key) return Promise.resolve(unattested("inject", "no connection to attest"));
    const hit = this.cache.get(key);
    if (hit) return hit;
    const p = this.resolve(socket).catch((err: Error) =>
      unattested(transportOf(socket), `attestation failed: ${err.message}`),
    );
    this.cache.set(key, p);
    return p;
  }

  private async resolve(socket: Socket): Promise<CallerAttestation> {
    if (!(socket instanceof Socket)) return unattested("inject", "an in-process request has no peer process");
    const transport = transportOf(socket);
    if (!this.linux)
      return unattested(transport, `caller attestation needs Linux (this host runs ${process.platform})`);
    return transport === "unix" ? this.unixPeer(socket) : this.tcpPeer(socket);
  }

  private async unixPeer(socket: Socket): Promise<CallerAttestation> {
    const fd = handleOf(socket)?.fd;
    if (fd === undefined || fd < 0)
      return unattested("unix", "the connection has no file descriptor (closed)");
    let cred: ReturnType<typeof peerCred>;
    try {
      cred = peerCred(fd);
    } catch (err) {
      return unattested("unix", (err as Error).message);
    }
    if (cred.pid <= 0) return unattested("unix", "the peer's pid is not visible from this pid namespace");
    // The pid is the one at connect(): that process may have exited and its pid gone to another
    // (the socket handed on first). A pidfd names the connecting process itself (Linux 6.5+).
    const pidfd = this.peerPidfd ? peerPidfd(fd) : undefined;
    const gone = () =>
      unattested(
        "unix",
        `the process that connected (pid ${cred.pid}) has exited: its pid may name another now`,
      );
    try {
      if (this.peerPidfd && (pidfd === undefined || pidfdPid(pidfd) !== cred.pid)) return gone();
      const proc = await this.attestProcess("unix", cred.pid);
      if (!proc.attested) return proc;
      // Still alive after /proc was read, so /proc/<pid> was that process all along.
      if (pidfd !== undefined && pidfdPid(pidfd) !== cred.pid) return gone();
      if (proc.uid !== cred.uid) {
        // The pid was reused between connect() and now: its process is not the peer.
        return unattested("unix", `pid ${cred.pid} no longer runs the peer (its uid changed)`);
      }
      return proc;
    } finally {
      if (pidfd !== undefined) closeSync(pidfd);
    }
  }

  /** The host's boot id, read once; undefined where the kernel does not offer it. */
  private bootId(): string | undefined {
    if (this.boot === undefined) {
      try {
        this.boot = readFileSync(join(this.proc, "sys", "kernel", "random", "boot_id"), "latin1").trim();
      } catch {
        this.boot = "";
      }
    }
    return this.boot || undefined;
  }

  private async tcpPeer(socket: Socket): Promise<CallerAttestation> {
    const { remoteAddress, remotePort, localAddress, localPort } = socket;
    if (!remoteAddress || !remotePort || !localAddress || !localPort) {
      return unattested("tcp", "the connection is closed");
    }
    if (!isLoopback(remoteAddress)) return unattested("tcp", `the peer ${remoteAddress} is not on loopback`);
    const row = this.peerSocket(
      { address: remoteAddress, port: remotePort },
      { address: localAddress, port: localPort },
    );
    if (!row) {
      return unattested(
        "tcp",
        "no socket of this network namespace holds the peer's end (closed, or another namespace)",
      );
    }
    const owner = await this.owners.find(row.inode, row.uid);
    if ("miss" in owner) {
      return unattested(
        "tcp",
        owner.miss === "unreadable"
          ? "the peer's process could not be looked at (/proc/<pid>/fd unreadable: the sidecar needs root or CAP_SYS_PTRACE for other users' processes)"
          : "no process holds the peer's socket",
      );
    }
    return this.attestProcess("tcp", owner.pid);
  }

  /**
   * The peer's socket: its local end is our remote end, its remote end ours. sock_diag first;
   * `/proc/net/tcp{,6}` when netlink cannot be used or does not find it.
   */
  private peerSocket(
    peer: { address: string; port: number },
    us: { address: string; port: number },
  ): PeerSocket | undefined {
    if (this.sockDiag) {
      try {
        const found = diagLookup(peer, us);
        if (found) return found;
      } catch {
        // No netlink here (e.g. seccomp, no koffi): /proc from now on.
        this.sockDiag = false;
      }
    }
    const p = procForms(peer);
    const u = procForms(us);
    for (const table of ["tcp", "tcp6"] as const) {
      const local = p[table];
      const remote = u[table];
      if (!local || !remote) continue;
      let text: string;
      try {
        text = readFileSync(join(this.proc, "net", table), "latin1");
      } catch {
        continue;
      }
      const row = findRow(text, local, remote);
      if (row) return row;
    }
    return undefined;
  }

  /**
   * Everything `/proc/<pid>` says of process `pid` (a connection's peer once found); unattested
   * when any of it cannot be read.
   */
  async attestProcess(transport: CallerTransport, pid: number): Promise<CallerAttestation> {
    const dir = join(this.proc, String(pid));
    const stat = readStat(this.proc, pid);
    if (!stat) return unattested(transport, `process ${pid} is gone or its stat is unreadable`);
    let ids: { uid: number; gid: number } | undefined;
    let cgroup: string | undefined;
    let exe: string;
    let exeSha256: string;
    try {
      ids = parseStatusIds(readFileSync(join(dir, "status"), "latin1"));
      cgroup = parseCgroup(readFileSync(join(dir, "cgroup"), "latin1"));
      exe = readlinkSync(join(dir, "exe"));
      exeSha256 = await this.digests.digest(join(dir, "exe"));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "error";
      return unattested(
        transport,
        code === "EACCES" || code === "EPERM"
          ? `process ${pid}'s executable is unreadable (${code}): the sidecar needs root or CAP_SYS_PTRACE for other users' processes`
          : `process ${pid} could not be read (${code})`,
      );
    }
    if (!ids) return unattested(transport, `process ${pid}'s status has no Uid/Gid`);
    // A pid reused while we read would show another start time.
    if (readStat(this.proc, pid)?.startTime !== stat.startTime) {
      return unattested(transport, `process ${pid} ended while it was attested`);
    }
    const caller: AttestedCaller = {
      attested: true,
      transport,
      uid: ids.uid,
      gid: ids.gid,
      pid,
      start_time: stat.startTime,
      exe,
      exe_sha256: exeSha256,
      cgroup: cgroup ?? "",
      container_id: cgroup ? containerId(cgroup) : undefined,
      boot_id: this.bootId(),
    };
    return caller;
  }
}

/** The pid a pidfd names now (`/proc/self/fdinfo`): -1 once that process has exited. */
function pidfdPid(pidfd: number): number {
  try {
    const m = /^Pid:\s+(-?\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${pidfd}`, "latin1"));
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}

function handleOf(socket: Socket): Handle | undefined {
  return (socket as unknown as { _handle?: Handle | null })._handle ?? undefined;
}

function transportOf(socket: Socket): CallerTransport {
  if (!(socket instanceof Socket)) return "inject";
  if (socket.remoteAddress !== undefined) return "tcp";
  return handleOf(socket)?.constructor?.name === "Pipe" ? "unix" : "tcp";
}
