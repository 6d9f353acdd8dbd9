import { createRequire } from "node:module";

/** The few libc calls Node does not offer, through koffi (an FFI with prebuilt binaries). */
export interface Libc {
  getsockopt(fd: number, level: number, name: number, val: Buffer, len: number[]): number;
  socket(domain: number, type: number, protocol: number): number;
  send(fd: number, buf: Buffer, len: number, flags: number): number;
  recv(fd: number, buf: Buffer, len: number, flags: number): number;
}

interface Koffi {
  load(lib: string): { func(decl: string): (...args: unknown[]) => number };
}

let libc: Libc | Error | undefined;

/** libc, loaded on first use (glibc, else musl); the load error is kept and handed back. */
export function loadLibc(): Libc | Error {
  if (libc !== undefined) return libc;
  try {
    const koffi = createRequire(import.meta.url)("koffi") as Koffi;
    const musl = `libc.musl-${process.arch === "arm64" ? "aarch64" : "x86_64"}.so.1`;
    let lib: ReturnType<Koffi["load"]> | undefined;
    let first: unknown;
    for (const name of ["libc.so.6", musl]) {
      try {
        lib = koffi.load(name);
        break;
      } catch (err) {
        first ??= err;
      }
    }
    if (!lib) throw first;
    libc = {
      getsockopt: lib.func(
        "int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)",
      ) as Libc["getsockopt"],
      socket: lib.func("int socket(int domain, int type, int protocol)") as Libc["socket"],
      send: lib.func("long send(int fd, const uint8_t *buf, size_t len, int flags)") as Libc["send"],
      recv: lib.func("long recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)") as Libc["recv"],
    };
  } catch (err) {
    libc = new Error(`cannot load libc through koffi: ${(err as Error).message}`);
  }
  return libc;
}
