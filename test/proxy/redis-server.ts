import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:net";
import { freePort } from "../support/free-port.js";
import { waitFor } from "../support/wait-for.js";

/** A private redis-server on a free port of 127.0.0.1, with ACL users and no default user. */
export interface PrivateRedis {
  readonly host: "127.0.0.1";
  readonly port: number;
  /** The server's process id (the benches read its CPU time). */
  readonly pid: number;
  stop(): Promise<void>;
}

/**
 * Starts `redis-server` with the given ACL users (`user` config lines, e.g.
 * `px_admin on >secret ~* &* +@all`) and the default user switched off.
 */
export async function startPrivateRedis(users: readonly string[]): Promise<PrivateRedis> {
  const dir = await mkdtemp(join(tmpdir(), "leasehold-redis-"));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const conf = [
      `port ${port}`,
      "bind 127.0.0.1",
      'save ""',
      "appendonly no",
      `dir ${dir}`,
      "user default off",
      ...users.map((u) => `user ${u}`),
    ].join("\n");
    await writeFile(join(dir, "redis.conf"), `${conf}\n`, { mode: 0o600 });
    const child: ChildProcess = spawn("redis-server", [join(dir, "redis.conf")], { stdio: "ignore" });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    // A test process that dies without stop() must not leave the server behind.
    const onExit = () => {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    };
    process.once("exit", onExit);
    void exited.then(() => process.off("exit", onExit));
    const up = await waitUp(port, exited);
    if (up) {
      return {
        host: "127.0.0.1",
        port,
        pid: child.pid ?? 0,
        stop: async () => {
          child.kill("SIGKILL");
          await exited;
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    child.kill("SIGKILL");
    if (attempt >= 3) {
      await rm(dir, { recursive: true, force: true });
      throw new Error("redis-server did not start");
    }
  }
}

/** True once the server answers PING (with NOAUTH: the default user is off). */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    let got = "";
    s.setTimeout(10_000, () => s.destroy());
    s.on("error", () => resolve(false));
    s.on("data", (c: Buffer) => {
      got += c.toString();
      if (got.includes("\r\n")) {
        s.destroy();
        resolve(got.startsWith("-NOAUTH"));
      }
    });
    s.on("close", () => resolve(false));
    s.on("connect", () => s.write("PING\r\n"));
  });
}

/** True once the server answers PING, false when it exits first (e.g. its port was taken). */
async function waitUp(port: number, exited: Promise<void>): Promise<boolean> {
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const up = await waitFor(`redis-server on port ${port} to answer PING`, async () =>
    gone ? ("exited" as const) : answers(port),
  );
  return up === true;
}
