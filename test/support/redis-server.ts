import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort } from "./free-port.js";
import { type GuardedProcess, guardProcess, releaseProcess } from "./process-guard.js";
import { waitFor } from "./wait-for.js";

/**
 * The least-privilege rules of the admin ACL user docs/adapters.md documents for the
 * redis-acl adapter: read and change users, end their connections, nothing else (no keys,
 * no channels). `+acl|save` is added when users live in an aclfile.
 */
export const REDIS_ACL_ADMIN_RULES = [
  "resetkeys",
  "resetchannels",
  "-@all",
  "+acl|getuser",
  "+acl|setuser",
  "+client|kill",
] as const;

export interface RedisServerOptions {
  /** Keep users in an aclfile (so `ACL SAVE` works), instead of redis.conf `user` lines. @default false */
  aclFile?: boolean;
}

/** A private redis-server for tests: its own folder and port; the `default` user is password-protected. */
export interface TestRedisServer {
  readonly host: "127.0.0.1";
  readonly port: number;
  /** The least-privilege admin ACL user (REDIS_ACL_ADMIN_RULES). */
  readonly admin: { readonly username: string; readonly password: string };
  /** The `default` user with every permission, for test setup only. */
  readonly root: { readonly username: "default"; readonly password: string };
  /** The aclfile's path when started with `aclFile: true`. */
  readonly aclFilePath: string | undefined;
  /** Creates (or resets) an enabled ACL user allowed PING only. */
  addUser(name: string, password: string): Promise<void>;
  /** Deletes that ACL user; no error if it is gone. */
  deleteUser(name: string): Promise<void>;
  /** A connection as `default`, for assertions; the caller disconnects it. */
  rootConnection(): Promise<Redis>;
  /** Stops the server and removes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

type Running = GuardedProcess;

function redisServerPath(): string {
  try {
    return execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("redis-server not found: apt-get install redis-server");
  }
}

function userLines(
  rootPassword: string,
  admin: { username: string; password: string },
  aclFile: boolean,
): string[] {
  // Passwords go in as SHA-256 hashes (#...), so the file holds no plaintext.
  const sha = (pw: string) => `#${createSha256(pw)}`;
  const adminRules = [...REDIS_ACL_ADMIN_RULES, ...(aclFile ? ["+acl|save"] : [])];
  return [
    `user default on ${sha(rootPassword)} ~* &* +@all`,
    `user ${admin.username} on ${sha(admin.password)} ${adminRules.join(" ")}`,
  ];
}

function createSha256(value: string): string {
  return createHash("sha256").update(value, "utf8").digest("hex");
}

/**
 * Starts `redis-server` on a free port of 127.0.0.1 with no persistence (`save ""`,
 * `appendonly no`), a password-protected `default` user and a least-privilege admin ACL
 * user; resolves once it answers. Stopped by `stop()`, a process `exit` hook, and a
 * detached watchdog should this process die without either.
 *
 * @throws Error naming `apt-get install redis-server` when the binary is missing.
 */
export async function startRedisServer(opts: RedisServerOptions = {}): Promise<TestRedisServer> {
  const bin = redisServerPath();
  const aclFile = opts.aclFile ?? false;
  const rootPassword = randomBytes(18).toString("base64url");
  const admin = { username: "leasehold-admin", password: randomBytes(18).toString("base64url") };
  const dir = await mkdtemp(join(tmpdir(), "leasehold-redis-"));
  const aclFilePath = aclFile ? join(dir, "users.acl") : undefined;
  const users = userLines(rootPassword, admin, aclFile);
  if (aclFilePath !== undefined) await writeFile(aclFilePath, `${users.join("\n")}\n`, { mode: 0o600 });

  let server: Running | undefined;
  try {
    for (let attempt = 1; server === undefined; attempt++) {
      const port = await freePort();
      const conf = [
        `port ${port}`,
        "bind 127.0.0.1",
        "protected-mode yes",
        'save ""',
        "appendonly no",
        `dir ${dir}`,
        "daemonize no",
        'logfile ""',
        "loglevel warning",
        ...(aclFilePath === undefined ? users : [`aclfile ${aclFilePath}`]),
      ].join("\n");
      await writeFile(join(dir, "redis.conf"), `${conf}\n`, { mode: 0o600 });
      const child = spawn(bin, [join(dir, "redis.conf")], { stdio: ["ignore", "pipe", "pipe"], cwd: dir });
      let output = "";
      const collect = (chunk: Buffer) => {
        output = (output + chunk.toString("utf8")).slice(-4000);
      };
      child.stdout?.on("data", collect);
      child.stderr?.on("data", collect);
      const proc = guardProcess(child, dir, "redis");
      if (await waitReady(port, rootPassword, child)) {
        server = proc;
        const ready = proc;
        let stopped: Promise<void> | undefined;
        const root = async () => {
          const r = new Redis({
            host: "127.0.0.1",
            port,
            username: "default",
            password: rootPassword,
            lazyConnect: true,
          });
          r.on("error", () => undefined);
          await r.connect();
          return r;
        };
        const asRoot = async <T>(work: (r: Redis) => Promise<T>): Promise<T> => {
          const r = await root();
          try {
            return await work(r);
          } finally {
            r.disconnect();
          }
        };
        return {
          host: "127.0.0.1",
          port,
          admin,
          root: { username: "default", password: rootPassword },
          aclFilePath,
          addUser: (name, password) =>
            asRoot(async (r) => {
              await r.call("ACL", "SETUSER", name, "reset", "on", `>${password}`, "+ping");
            }),
          deleteUser: (name) =>
            asRoot(async (r) => {
              await r.call("ACL", "DELUSER", name);
            }),
          rootConnection: root,
          stop() {
            stopped ??= stopServer(ready);
            return stopped;
          },
        };
      }
      releaseProcess(proc);
      if (attempt >= 3) throw new Error(`redis-server exited before answering: ${output.trim()}`);
    }
    throw new Error("unreachable");
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Polls PING as `default` until it answers (true) or the server exits (false). */
async function waitReady(port: number, password: string, child: ChildProcess): Promise<boolean> {
  return waitFor(`redis-server on port ${port} to answer PING`, async () => {
    if (child.exitCode !== null || child.signalCode !== null) return "exited" as const;
    const r = new Redis({
      host: "127.0.0.1",
      port,
      username: "default",
      password,
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    r.on("error", () => undefined);
    try {
      await r.connect();
      return (await r.ping()) === "PONG";
    } finally {
      r.disconnect();
    }
  }).then((v) => v === true);
}

async function stopServer(proc: Running): Promise<void> {
  const { child } = proc;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }
  releaseProcess(proc);
  await rm(proc.dir, { recursive: true, force: true });
}

/** Reads the aclfile (for assertions on what ACL SAVE wrote). */
export async function readAclFile(server: TestRedisServer): Promise<string> {
  if (server.aclFilePath === undefined) throw new Error("this server has no aclfile");
  return readFile(server.aclFilePath, "utf8");
}

/**
 * Whether `user` logs in to `server` with `password` (a connection without credentials, then
 * AUTH as the account): false for WRONGPASS, any other failure thrown.
 */
export async function redisLogin(
  server: Pick<TestRedisServer, "port">,
  user: string,
  password: string,
): Promise<boolean> {
  const r = new Redis({
    port: server.port,
    lazyConnect: true,
    retryStrategy: () => null,
    enableReadyCheck: false,
  });
  r.on("error", () => undefined);
  try {
    await r.connect();
    return (await r.call("AUTH", user, password)) === "OK";
  } catch (err) {
    if (/WRONGPASS/.test((err as Error).message)) return false;
    throw err;
  } finally {
    r.disconnect();
  }
}
