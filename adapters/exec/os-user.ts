import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** The numeric identity a command runs under. */
export interface OsUser {
  readonly uid: number;
  readonly gid: number;
}

/** Names an operator may give as `user`: what useradd accepts, no separators of passwd lines. */
export const OS_USER_NAME = /^[A-Za-z_][A-Za-z0-9._-]{0,31}$/;

function fromPasswdLine(line: string, name: string): OsUser | undefined {
  const [login, , uid, gid] = line.split(":");
  if (login !== name || uid === undefined || gid === undefined) return undefined;
  if (!/^\d+$/.test(uid) || !/^\d+$/.test(gid)) return undefined;
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * The uid and primary gid of the OS user `name`, through NSS (`getent passwd`, so LDAP or
 * sssd users count), else /etc/passwd where getent is missing; undefined when there is no such
 * user. Never runs a shell; a name outside OS_USER_NAME is never looked up.
 */
export function lookupOsUser(name: string): OsUser | undefined {
  if (!OS_USER_NAME.test(name)) return undefined;
  let text: string;
  try {
    text = execFileSync("getent", ["passwd", name], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 5_000,
    });
  } catch (err) {
    // getent exits 2 for "no such user"; only a missing getent falls back to the file.
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") return undefined;
    try {
      text = readFileSync("/etc/passwd", "utf8");
    } catch {
      return undefined;
    }
  }
  for (const line of text.split("\n")) {
    const user = fromPasswdLine(line, name);
    if (user) return user;
  }
  return undefined;
}
