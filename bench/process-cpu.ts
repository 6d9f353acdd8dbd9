/**
 * CPU time of the processes a multi-process benchmark runs on: a process by pid (/proc), a
 * PostgreSQL cluster (its postmaster with its reaped and live backends), a redis-server (INFO
 * cpu), and the Vault dev server started as a process of its own so its CPU is not the load
 * generator's.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Redis } from "ioredis";

const TICK = 100; // USER_HZ: /proc/<pid>/stat counts CPU in 1/100 s

function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** utime + stime of a process, ms. */
export function cpuMs(pid: number): number {
  const f = statFields(pid);
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICK;
}

/**
 * A PostgreSQL cluster's CPU, ms: the postmaster's own and its reaped children's (cutime, cstime:
 * every backend that served a connection and exited) plus its live children's.
 */
export function postgresCpuMs(dataDir: string): number {
  const postmaster = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
  const f = statFields(postmaster);
  let ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const c = statFields(Number(entry));
      if (Number(c[1]) === postmaster) ticks += Number(c[11]) + Number(c[12]);
    } catch {
      // gone meanwhile
    }
  }
  return (ticks * 1000) / TICK;
}

/** A redis-server's own CPU (user + sys, all its threads), ms. */
export async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info("cpu");
  const num = (k: string) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return (num("used_cpu_user") + num("used_cpu_sys")) * 1000;
}

export interface VaultDevProcess {
  readonly address: string;
  readonly rootToken: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** `test/vault-dev/main.ts` in a process of its own; resolves once it prints its address. */
export async function startVaultDevProcess(port: number, rootToken: string): Promise<VaultDevProcess> {
  const main = resolve("test/vault-dev/main.ts");
  const child: ChildProcess = spawn(
    process.execPath,
    ["--import", "tsx", main, "--port", String(port), "--root-token", rootToken],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.once("exit", kill);
  const address = await new Promise<string>((ok, fail) => {
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m?.[1]) ok(m[1]);
    });
    child.once("exit", (code) => fail(new Error(`vault-dev exited ${code}`)));
  });
  return {
    address,
    rootToken,
    pid: child.pid as number,
    stop: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await gone;
    },
  };
}

/**
 * Time a process's threads spent runnable but waiting for a CPU (the run queue), ms: the second
 * field of /proc/<pid>/task/<tid>/schedstat, summed over its threads. Beside its CPU time it says
 * whether a process was starved (ready to run, no core free) or idle (waiting for I/O).
 */
export function runQueueMs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[1] ?? 0);
    } catch {
      // thread gone meanwhile
    }
  }
  return ns / 1e6;
}
