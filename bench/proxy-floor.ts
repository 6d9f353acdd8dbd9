/**
 * What any TCP relay costs on this machine, whatever it is written in: `pgbench -S` direct,
 * through `socat` (C, one read + one write per chunk) and through a bare Node relay
 * (`socket.pipe`, nothing else), in one run. The leasehold listener cannot beat the bare Node
 * relay; the gap between socat and direct is the price of the extra hop itself (two more
 * loopback writes and wake-ups per transaction) on this machine's cores.
 *
 *   npx tsx bench/proxy-floor.ts [--seconds 8] [--clients 4] [--runs 2]
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { startScramPostgres } from "../test/support/pg-cluster.js";
import { freePort } from "../test/support/free-port.js";
import {
  bareNodeRelay,
  type CpuSplit,
  cpuLine,
  fmt,
  measureCpu,
  meanCpu,
  tool,
  treeCpuUs,
} from "./proxy-bench-support.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

const seconds = arg("seconds", 8);
const clients = arg("clients", 4);
const runs = arg("runs", 2);

async function main(): Promise<void> {
  const cluster = await startScramPostgres();
  const socatPort = await freePort();
  const socat = spawn(
    "socat",
    [
      `TCP-LISTEN:${socatPort},bind=127.0.0.1,reuseaddr,fork,nodelay`,
      `TCP:127.0.0.1:${cluster.port},nodelay`,
    ],
    { stdio: "ignore" },
  );
  const relay = await bareNodeRelay(cluster.port);
  try {
    const pid = Number((await readFile(join(cluster.dataDir, "postmaster.pid"), "utf8")).split("\n")[0]);
    const env = (port: number) => ({
      PGPASSWORD: cluster.superuser.password,
      PGSSLMODE: "disable",
      PGHOST: "127.0.0.1",
      PGPORT: String(port),
      PGUSER: "postgres",
      PGDATABASE: "postgres",
    });
    await tool("pgbench", ["-i", "-s", "1", "-q"], env(cluster.port));
    const paths = { direct: cluster.port, socat: socatPort, "node pipe": relay.port } as const;
    type Path = keyof typeof paths;
    const results = new Map<Path, Array<{ tps: number; tx: number; cpu: CpuSplit; socatUs: number }>>();
    await tool("pgbench", ["-S", "-n", "-T", "2", "-c", String(clients)], env(relay.port));
    console.log(`pgbench -S -T ${seconds} -c ${clients}: direct, through socat, through a bare Node pipe`);
    for (let i = 0; i < runs; i++) {
      for (const path of Object.keys(paths) as Path[]) {
        const socat0 = await treeCpuUs(socat.pid ?? 0);
        const [out, cpu] = await measureCpu(pid, () =>
          tool(
            "pgbench",
            ["-S", "-n", "-T", String(seconds), "-c", String(clients), "-j", String(Math.min(clients, 2))],
            env(paths[path]),
          ),
        );
        const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1]);
        const tx = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1]);
        const socatUs = (await treeCpuUs(socat.pid ?? 0)) - socat0;
        results.set(path, [...(results.get(path) ?? []), { tps, tx, cpu, socatUs }]);
      }
    }
    const avg = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const direct = avg((results.get("direct") ?? []).map((r) => r.tps));
    for (const [path, rs] of results) {
      const tps = avg(rs.map((r) => r.tps));
      const cpu = meanCpu(rs.map((r) => r.cpu));
      console.log(
        `  ${path.padEnd(9)}: ${rs.map((r) => fmt(r.tps, 0)).join(" / ")} tps, ${fmt((100 * tps) / direct, 0)} % of direct`,
      );
      const tx = avg(rs.map((r) => r.tx));
      console.log(`             ${cpuLine(cpu, tx, path === "node pipe")}`);
      if (path === "socat")
        console.log(`             socat ${fmt(avg(rs.map((r) => r.socatUs)) / tx, 1)} µs CPU per request`);
    }
  } finally {
    socat.kill("SIGTERM");
    relay.server.close();
    await cluster.stop();
  }
}

await main();
