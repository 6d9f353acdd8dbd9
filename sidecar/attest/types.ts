import type { Socket } from "node:net";

/** How the caller reached the sidecar. `inject`: fastify's in-process `inject()`, no socket. */
export type CallerTransport = "tcp" | "unix" | "inject";

/** The local process at the other end of a connection, as the kernel reports it. */
export interface AttestedCaller {
  readonly attested: true;
  readonly transport: CallerTransport;
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  /** `/proc/<pid>/stat` field 22 (clock ticks since boot), so a reused pid does not match. */
  readonly start_time: string;
  /** The executable's path (`/proc/<pid>/exe`). */
  readonly exe: string;
  /** Hex SHA-256 of the executable's bytes. */
  readonly exe_sha256: string;
  /** The process's cgroup v2 path (`/proc/<pid>/cgroup`, `0::` line), e.g. `/user.slice/…`. */
  readonly cgroup: string;
  /** The container id found in the cgroup path, when there is one. */
  readonly container_id?: string | undefined;
  /**
   * This host's boot id (`/proc/sys/kernel/random/boot_id`): one host, since its last start. A
   * lease bound on one host of a cluster is not used from another, nor after a reboot.
   */
  readonly boot_id?: string | undefined;
}

/** A connection whose peer could not be resolved; `reason` says why (no secret, no path of ours). */
export interface UnattestedCaller {
  readonly attested: false;
  readonly transport: CallerTransport;
  readonly reason: string;
}

export type CallerAttestation = AttestedCaller | UnattestedCaller;

/** Resolves the peer process of a connection; the answer is cached per socket. */
export interface CallerAttestor {
  attest(socket: Socket): Promise<CallerAttestation>;
}

/** Process ancestry, for `bindCaller: [process]`. */
export interface ProcessTree {
  /**
   * True when the process `pid` (started at `startTime`) is the process `ancestorPid`
   * (started at `ancestorStart`) or one of its descendants, both still identified by start time.
   */
  isSameOrDescendant(
    pid: number,
    startTime: string,
    ancestorPid: number,
    ancestorStart: string,
  ): Promise<boolean>;
}
