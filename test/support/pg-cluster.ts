import { execFile, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { appendFile, chown, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./free-port.js";

/** A private PostgreSQL cluster that checks passwords (scram-sha-256), for tests and demos. */
export interface ScramPostgres {
  readonly host: "127.0.0.1";
  readonly port: number;
  readonly superuser: { readonly username: "postgres"; readonly password: string };
  /** The cluster's data directory (inside a temp folder that `stop()` removes). */
  readonly dataDir: string;
  /** The server log (stderr of the postmaster): what `log_statement` writes to. */
  readonly logFile: string;
  /** Stops the server at once and removes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

export interface ScramPostgresOptions {
  /** Password of the `postgres` superuser. @default random */
  superuserPassword?: string;
  /** Extra server settings written to postgresql.conf, e.g. `{ log_statement: "all" }`. */
  settings?: Readonly<Record<string, string>>;
}

/**
 * A connected pg client as the cluster's `postgres` superuser, on database `postgres`. Client
 * errors after connecting (the server going away) are swallowed; the caller ends the client.
 */
export async function superuserClient(
  cluster: Pick<ScramPostgres, "host" | "port" | "superuser">,
): Promise<pg.Client> {
  const c = new pg.Client({
    host: cluster.host,
    port: cluster.port,
    user: "postgres",
    password: cluster.superuser.password,
    database: "postgres",
  });
  c.on("error", () => undefined);
  await c.connect();
  return c;
}

/** Runs `fn` with a superuser client of `cluster` (see {@link superuserClient}) and ends the client after. */
export async function asSuperuser<T>(
  cluster: Pick<ScramPostgres, "host" | "port" | "superuser">,
  fn: (c: pg.Client) => Promise<T>,
): Promise<T> {
  const c = await superuserClient(cluster);
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const PG_ROOT = "/usr/lib/postgresql";
const OS_USER = "postgres";

interface Binaries {
  readonly initdb: string;
  readonly pgCtl: string;
}

interface RunningCluster {
  readonly pgCtl: string;
  readonly dataDir: string;
  readonly baseDir: string;
  /** Process group of the detached watchdog, once started. */
  watchdog?: number | undefined;
}

/** Clusters of this process not stopped yet; stopped synchronously if the process exits first. */
const running = new Set<RunningCluster>();
let exitHookInstalled = false;

/**
 * Starts a fresh PostgreSQL cluster with `scram-sha-256` authentication on a free
 * port of 127.0.0.1, owned by the `postgres` OS user (we may run as root, which
 * PostgreSQL refuses). Resolves once the server accepts connections. The cluster
 * is removed by `stop()`, by a process `exit` hook, and by a detached watchdog if
 * this process dies without either.
 *
 * @throws Error naming `apt-get install postgresql` when the server binaries are missing.
 */
export async function startScramPostgres(opts: ScramPostgresOptions = {}): Promise<ScramPostgres> {
  const bin = findBinaries();
  const password = opts.superuserPassword ?? randomBytes(24).toString("base64url");
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? osUser(OS_USER) : undefined;

  const baseDir = await mkdtemp(join(tmpdir(), "leasehold-pg-"));
  const dataDir = join(baseDir, "data");
  const logFile = join(baseDir, "server.log");
  const pwFile = join(baseDir, "pwfile");
  const cluster: RunningCluster = { pgCtl: bin.pgCtl, dataDir, baseDir };

  try {
    if (owner) await chown(baseDir, owner.uid, owner.gid);
    await writeFile(pwFile, `${password}\n`, { mode: 0o600 });
    if (owner) await chown(pwFile, owner.uid, owner.gid);
    await run(asRoot, baseDir, bin.initdb, [
      "-D",
      dataDir,
      "-U",
      OS_USER,
      "--auth=scram-sha-256",
      `--pwfile=${pwFile}`,
      "-E",
      "UTF8",
      "--locale=C",
      "--no-sync",
    ]);
    await rm(pwFile, { force: true });
    await appendFile(join(dataDir, "postgresql.conf"), serverConf(baseDir, opts.settings ?? {}));

    running.add(cluster);
    installExitHook();
    cluster.watchdog = startWatchdog(asRoot, cluster);

    const port = await startOnFreePort(asRoot, cluster, logFile);
    let stopped: Promise<void> | undefined;
    return {
      host: "127.0.0.1",
      port,
      superuser: { username: "postgres", password },
      dataDir,
      logFile,
      stop() {
        stopped ??= stopCluster(asRoot, cluster);
        return stopped;
      },
    };
  } catch (err) {
    await stopCluster(asRoot, cluster);
    throw err;
  }
}

function findBinaries(): Binaries {
  const versions = existsSync(PG_ROOT)
    ? readdirSync(PG_ROOT)
        .filter((v) => /^\d+(\.\d+)?$/.test(v) && existsSync(join(PG_ROOT, v, "bin", "initdb")))
        .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a))
    : [];
  const newest = versions[0];
  if (newest === undefined) {
    throw new Error(
      `PostgreSQL server binaries (initdb, pg_ctl) not found under ${PG_ROOT}/<version>/bin: apt-get install postgresql`,
    );
  }
  const dir = join(PG_ROOT, newest, "bin");
  return { initdb: join(dir, "initdb"), pgCtl: join(dir, "pg_ctl") };
}

function osUser(name: string): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync("id", ["-u", name], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", name], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch (err) {
    throw new Error(`OS user "${name}" not found (it comes with the server): apt-get install postgresql`, {
      cause: err,
    });
  }
}

/** postgresql.conf values are single-quoted with quotes doubled, so any setting value is taken literally. */
function serverConf(socketDir: string, settings: Readonly<Record<string, string>>): string {
  const lines: Record<string, string> = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: socketDir,
    fsync: "off",
    synchronous_commit: "off",
    full_page_writes: "off",
    ...settings,
  };
  return `\n# leasehold test cluster\n${Object.entries(lines)
    .map(([key, value]) => {
      if (!/^[a-z_.]+$/i.test(key)) throw new Error(`invalid server setting name: ${key}`);
      return `${key} = '${value.replaceAll("'", "''")}'`;
    })
    .join("\n")}\n`;
}

async function startOnFreePort(asRoot: boolean, cluster: RunningCluster, logFile: string): Promise<number> {
  const attempts = 3;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      // The port goes on the command line so a retry needs no config rewrite; -w waits until ready.
      await run(asRoot, cluster.baseDir, cluster.pgCtl, [
        "start",
        "-D",
        cluster.dataDir,
        "-l",
        logFile,
        "-w",
        "-t",
        "60",
        "-o",
        `-p ${port}`,
      ]);
      return port;
    } catch (err) {
      const log = await readFile(logFile, "utf8").catch(() => "");
      // Another process took the port between freePort() and bind(): try another one.
      if (attempt < attempts && /could not (bind|create listen socket)|Address already in use/i.test(log)) {
        continue;
      }
      throw new Error(`pg_ctl start failed: ${errorText(err)}\n${log.split("\n").slice(-15).join("\n")}`, {
        cause: err,
      });
    }
  }
}

async function stopCluster(asRoot: boolean, cluster: RunningCluster): Promise<void> {
  running.delete(cluster);
  if (existsSync(join(cluster.dataDir, "postmaster.pid"))) {
    await run(asRoot, cluster.baseDir, cluster.pgCtl, [
      "stop",
      "-D",
      cluster.dataDir,
      "-m",
      "immediate",
      "-w",
    ]).catch(() => undefined);
  }
  await rm(cluster.baseDir, { recursive: true, force: true });
  endWatchdog(cluster);
}

function endWatchdog(cluster: RunningCluster): void {
  if (cluster.watchdog === undefined) return;
  try {
    // The watchdog is a group leader (detached): end it and its `sleep` together.
    process.kill(-cluster.watchdog, "SIGTERM");
  } catch {
    // already gone
  }
  cluster.watchdog = undefined;
}

function command(asRoot: boolean, file: string, args: readonly string[]): [string, string[]] {
  return asRoot ? ["runuser", ["-u", OS_USER, "--", file, ...args]] : [file, [...args]];
}

function run(asRoot: boolean, cwd: string, file: string, args: readonly string[]): Promise<string> {
  const [cmd, argv] = command(asRoot, file, args);
  return new Promise((resolve, reject) => {
    // cwd is the cluster folder: the postgres user may not be allowed into the caller's cwd.
    execFile(cmd, argv, { cwd, encoding: "utf8", timeout: 90_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${file.split("/").pop()} exited: ${stderr.trim() || err.message}`, { cause: err }));
      } else {
        resolve(stdout);
      }
    });
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    const asRoot = process.getuid?.() === 0;
    for (const cluster of running) {
      const [cmd, argv] = command(asRoot, cluster.pgCtl, ["stop", "-D", cluster.dataDir, "-m", "immediate"]);
      try {
        execFileSync(cmd, argv, { cwd: cluster.baseDir, stdio: "ignore", timeout: 10_000 });
      } catch {
        // best effort: the watchdog retries
      }
      rmSync(cluster.baseDir, { recursive: true, force: true });
      endWatchdog(cluster);
    }
    running.clear();
  });
}

/**
 * A detached shell that waits for this process to die, then stops the cluster and
 * removes its folder: covers deaths that skip the exit hook (SIGKILL, a crashed worker).
 */
function startWatchdog(asRoot: boolean, cluster: RunningCluster): number | undefined {
  const script = [
    'while kill -0 "$1" 2>/dev/null; do sleep 1; done',
    'if [ "$5" = root ]; then runuser -u postgres -- "$2" stop -D "$3" -m immediate; else "$2" stop -D "$3" -m immediate; fi',
    'rm -rf "$4"',
  ].join("\n");
  const child = spawn(
    "/bin/sh",
    [
      "-c",
      script,
      "leasehold-pg-watchdog",
      String(process.pid),
      cluster.pgCtl,
      cluster.dataDir,
      cluster.baseDir,
      asRoot ? "root" : "user",
    ],
    { detached: true, stdio: "ignore", cwd: "/" },
  );
  child.on("error", () => undefined);
  child.unref();
  return child.pid;
}
