import { chmod, lstat, stat, unlink } from "node:fs/promises";
import { connect } from "node:net";
import { dirname } from "node:path";

/** The socket's mode: owner and group (the agents' group) may connect, nobody else. */
export const SOCKET_MODE = 0o660;

/** A socket that cannot be used safely; the message says why and what to do. */
export class SocketPathError extends Error {
  override readonly name = "SocketPathError";
}

/**
 * Checks a Unix socket path before anything starts: its directory must exist and must not be
 * writable by others (whoever can write there could replace the socket with their own and
 * receive agents' tokens). A stale socket left by a dead sidecar is removed; a live one, or a
 * file that is not a socket, is refused.
 * @throws SocketPathError
 */
export async function prepareSocketPath(path: string): Promise<void> {
  const dir = dirname(path);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(dir);
  } catch {
    throw new SocketPathError(`listen.socket: the directory ${dir} does not exist`);
  }
  if (!info.isDirectory()) throw new SocketPathError(`listen.socket: ${dir} is not a directory`);
  if ((info.mode & 0o002) !== 0) {
    throw new SocketPathError(
      `listen.socket: the directory ${dir} is writable by others (mode ${(info.mode & 0o7777).toString(8)}); ` +
        "put the socket in a directory only its owner and group can write (e.g. /run/leasehold, mode 0750)",
    );
  }
  let existing: Awaited<ReturnType<typeof lstat>>;
  try {
    existing = await lstat(path);
  } catch {
    return;
  }
  if (!existing.isSocket()) throw new SocketPathError(`listen.socket: ${path} exists and is not a socket`);
  if (await answers(path)) {
    throw new SocketPathError(`listen.socket: another process is listening on ${path}`);
  }
  await unlink(path);
}

/**
 * Listens on the socket with mode 0660 from its first instant: the umask is narrowed while the
 * socket is bound (so no connection can race a wider mode), then the mode is set explicitly.
 */
export async function listenOnSocket(
  listen: (path: string) => Promise<unknown>,
  path: string,
): Promise<void> {
  const previous = process.umask(0o117);
  try {
    await listen(path);
  } finally {
    process.umask(previous);
  }
  await chmod(path, SOCKET_MODE);
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    // A socket that accepts but does not answer in time is treated as live: never unlink a live one.
    s.setTimeout(1000, () => done(true));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}
