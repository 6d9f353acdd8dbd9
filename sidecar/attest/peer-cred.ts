import { createRequire } from "node:module";

/** The credentials of a Unix-socket peer, as the kernel recorded them at `connect()`. */
export interface PeerCred {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

type GetSockOpt = (fd: number, level: number, name: number, val: Buffer, len: number[]) => number;

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

let getsockopt: GetSockOpt | Error | undefined;

/** libc's getsockopt through koffi, loaded on first use; the load error is kept and reported. */
function load(): GetSockOpt | Error {
  if (getsockopt === undefined) {
    try {
      const koffi = createRequire(import.meta.url)("koffi") as {
        load(lib: string): { func(decl: string): GetSockOpt };
      };
      const musl = `libc.musl-${process.arch === "arm64" ? "aarch64" : "x86_64"}.so.1`;
      let libc: ReturnType<typeof koffi.load> | undefined;
      let first: unknown;
      for (const name of ["libc.so.6", musl]) {
        try {
          libc = koffi.load(name);
          break;
        } catch (err) {
          first ??= err;
        }
      }
      if (!libc) throw first;
      getsockopt = libc.func(
        "int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)",
      );
    } catch (err) {
      getsockopt = new Error(`cannot load getsockopt through koffi: ${(err as Error).message}`);
    }
  }
  return getsockopt;
}

/**
 * `getsockopt(fd, SOL_SOCKET, SO_PEERCRED)` on a connected Unix socket: `struct ucred`
 * (pid, uid, gid). Node has no call for it; koffi calls libc directly. A peer in a pid
 * namespace this one cannot see has pid 0.
 * @throws Error when the module cannot be loaded or the call fails.
 */
export function peerCred(fd: number): PeerCred {
  const call = load();
  if (call instanceof Error) throw call;
  const buf = Buffer.alloc(12);
  const len = [12];
  if (call(fd, SOL_SOCKET, SO_PEERCRED, buf, len) !== 0 || len[0] !== 12) {
    throw new Error("getsockopt(SO_PEERCRED) failed");
  }
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}
