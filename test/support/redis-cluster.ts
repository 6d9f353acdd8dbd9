import { type ChildProcess, execFile, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster, type ClusterOptions } from "ioredis";
import { freePort } from "./free-port.js";
import { abortWhenExited, waitFor } from "./wait-for.js";

/** One master of a local Redis Cluster. */
export interface ClusterNode {
  readonly host: "127.0.0.1";
  readonly port: number;
}

/** A three-master Redis Cluster of local `redis-server` processes, for tests and benchmarks. */
export interface LocalRedisCluster {
  readonly nodes: readonly ClusterNode[];
  /** A new ioredis Cluster client; the caller disconnects it. */
  client(opts?: ClusterOptions): Cluster;
  /** Kills the servers and removes their folder. Safe to call twice. */
  stop(): Promise<void>;
}

interface Running {
  readonly dir: string;
  readonly children: ChildProcess[];
}

/** Clusters of this process not stopped yet; killed synchronously if the process exits first. */
const running = new Set<Running>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const r of running) {
      for (const c of r.children) if (c.exitCode === null) c.kill("SIGKILL");
      rmSync(r.dir, { recursive: true, force: true });
    }
  });
}

function run(cmd: string, args: readonly string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, [...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Starts one `redis-server` in cluster mode; resolves once it answers PING. */
async function startNode(dir: string, running: Running): Promise<ClusterNode> {
  // The cluster bus port is set explicitly, so it need not be port + 10000 (which may be taken or > 65535).
  const [port, busPort] = [await freePort(), await freePort()];
  const child = spawn(
    "redis-server",
    [
      "--port",
      String(port),
      "--cluster-port",
      String(busPort),
      "--bind",
      "127.0.0.1",
      "--cluster-enabled",
      "yes",
      "--cluster-config-file",
      join(dir, `nodes-${port}.conf`),
      // No test fails a node over, so a loaded machine's slow bus must never mark one as failing.
      "--cluster-node-timeout",
      "30000",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  running.children.push(child);
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  try {
    await waitFor(
      `redis-server on ${port} to answer PING`,
      async () => (await run("redis-cli", ["-p", String(port), "ping"], 10_000)).trim() === "PONG",
      { signal: abortWhenExited(exited, `redis-server on ${port}`) },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${out.slice(-2000)}`);
  }
  return { host: "127.0.0.1", port };
}

async function clusterOk(nodes: readonly ClusterNode[]): Promise<boolean> {
  for (const n of nodes) {
    const info = await run("redis-cli", ["-p", String(n.port), "cluster", "info"], 10_000).catch(() => "");
    if (!/cluster_state:ok/.test(info)) return false;
  }
  return true;
}

/**
 * Starts three `redis-server` masters in cluster mode on free ports of 127.0.0.1, joins them with
 * `redis-cli --cluster create` (no replicas), and resolves once every node reports
 * `cluster_state:ok`. The servers keep nothing on disk but their node files, in a temp folder
 * that `stop()` removes; a process `exit` hook kills them if `stop()` is never called.
 * @throws Error when `redis-server` or `redis-cli` is missing or the cluster does not form.
 */
export async function startRedisCluster(): Promise<LocalRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), "leasehold-redis-cluster-"));
  const r: Running = { dir, children: [] };
  running.add(r);
  installExitHook();
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      await Promise.all(
        r.children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve();
              c.once("exit", () => resolve());
              c.kill("SIGKILL");
            }),
        ),
      );
      running.delete(r);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  try {
    const nodes: ClusterNode[] = [];
    for (let i = 0; i < 3; i++) nodes.push(await startNode(dir, r));
    await run(
      "redis-cli",
      [
        "--cluster",
        "create",
        ...nodes.map((n) => `${n.host}:${n.port}`),
        "--cluster-replicas",
        "0",
        "--cluster-yes",
      ],
      90_000,
    );
    await waitFor(
      "every node of the local Redis Cluster to report cluster_state:ok",
      () => clusterOk(nodes),
      {
        intervalMs: 100,
      },
    );
    return {
      nodes,
      client: (opts) =>
        new Cluster(
          nodes.map((n) => ({ host: n.host, port: n.port })),
          opts,
        ),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
