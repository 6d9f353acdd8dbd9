import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { chown, mkdir } from "node:fs/promises";
import { join } from "node:path";

/** An OS user made for one test file (`useradd --system`), removed by `remove()`. */
export interface OsUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** A private folder (mode 700) this user owns, under `parent`. */
  ownDir(parent: string, name: string): Promise<string>;
  remove(): void;
}

/** Whether this process may make OS users and run commands as them (root, with useradd and runuser). */
export function canMakeOsUsers(): boolean {
  return process.getuid?.() === 0 && spawnSync("runuser", ["--version"]).status === 0;
}

/** Makes a system user with no home and no password: nothing can log in as it. */
export function makeOsUser(label: string): OsUser {
  const name = `lh_${label}_${randomBytes(3).toString("hex")}`;
  const made = spawnSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], {
    encoding: "utf8",
  });
  if (made.status !== 0) throw new Error(`useradd ${name}: ${made.stderr}`);
  const id = (flag: string) => Number(spawnSync("id", [flag, name], { encoding: "utf8" }).stdout.trim());
  const uid = id("-u");
  const gid = id("-g");
  return {
    name,
    uid,
    gid,
    async ownDir(parent, dirName) {
      const dir = join(parent, dirName);
      await mkdir(dir, { mode: 0o700 });
      await chown(dir, uid, gid);
      return dir;
    },
    remove() {
      spawnSync("userdel", [name]);
    },
  };
}

/** argv that runs `file args…` as `user` (runuser keeps the environment it is given). */
export function asUser(user: OsUser, file: string, args: readonly string[]): [string, string[]] {
  return ["runuser", ["-u", user.name, "--", file, ...args]];
}
