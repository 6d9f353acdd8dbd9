/**
 * pgbench -S (select-only) through the PostgreSQL listener against direct to the same server,
 * as the same account, in one run. Prints throughput of both, the ratio, and the latency the
 * proxy adds (p50 and average of single-client runs).
 *
 *   npx tsx bench/proxy-pg.ts [--seconds 10] [--clients 4]
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { startScramPostgres } from "../test/support/pg-cluster.js";
import { startProxyHarness } from "../test/proxy/harness.js";
import { fmt, quantile, startBoth, tool } from "./proxy-bench-support.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

const seconds = arg("seconds", 10);
const clients = arg("clients", 4);

interface Target {
  readonly port: number;
  readonly user: string;
  readonly password: string;
}

function env(t: Target): NodeJS.ProcessEnv {
  return {
    PGPASSWORD: t.password,
    PGSSLMODE: "disable",
    PGHOST: "127.0.0.1",
    PGPORT: String(t.port),
    PGUSER: t.user,
    PGDATABASE: "postgres",
  };
}

async function throughput(t: Target): Promise<{ tps: number; latencyMs: number; tx: number; cpuUs: number }> {
  const before = process.cpuUsage();
  const out = await tool(
    "pgbench",
    ["-S", "-n", "-T", String(seconds), "-c", String(clients), "-j", String(Math.min(clients, 2))],
    env(t),
  );
  const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1]);
  const latencyMs = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]);
  const tx = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1]);
  const used = process.cpuUsage(before);
  return { tps, latencyMs, tx, cpuUs: used.user + used.system };
}

/** Per-transaction latencies (µs) of a single-client run, from pgbench's transaction log. */
async function latencies(t: Target): Promise<number[]> {
  const dir = await mkdtemp(join(tmpdir(), "leasehold-pgbench-"));
  try {
    await tool(
      "pgbench",
      [
        "-S",
        "-n",
        "-T",
        String(Math.max(3, Math.ceil(seconds / 2))),
        "-c",
        "1",
        "-l",
        `--log-prefix=${join(dir, "tx")}`,
      ],
      env(t),
    );
    const out: number[] = [];
    for (const f of await readdir(dir)) {
      for (const line of (await readFile(join(dir, f), "utf8")).split("\n")) {
        const us = Number(line.split(" ")[2]);
        if (Number.isFinite(us) && line.trim() !== "") out.push(us);
      }
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const [cluster, h] = await startBoth(startScramPostgres(), startProxyHarness({ name: "bench-pg" }), {
    a: (c) => c.stop(),
    b: (x) => x.close(),
  });
  try {
    const adminPassword = randomBytes(18).toString("base64url");
    const su = new pg.Client({
      host: cluster.host,
      port: cluster.port,
      user: "postgres",
      password: cluster.superuser.password,
      database: "postgres",
    });
    await su.connect();
    await su.query(`CREATE ROLE bench_admin LOGIN CREATEROLE PASSWORD '${adminPassword}'`);
    await su.query(`CREATE ROLE bench_app LOGIN PASSWORD '${randomBytes(12).toString("hex")}'`);
    await su.end();
    await tool(
      "pgbench",
      ["-i", "-s", "1", "-q"],
      env({ port: cluster.port, user: "postgres", password: cluster.superuser.password }),
    );
    const su2 = new pg.Client({
      host: cluster.host,
      port: cluster.port,
      user: "postgres",
      password: cluster.superuser.password,
      database: "postgres",
    });
    await su2.connect();
    await su2.query("GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench_app");
    await su2.end();
    await h.register({
      name: "bench-pg",
      adapter: "postgres",
      connection: { host: cluster.host, port: cluster.port, database: "postgres" },
      admin: { username: "bench_admin", password: adminPassword },
      accounts: ["bench_app"],
      proxy: { port: 0 },
      lease: { defaultTtl: 3600, maxTtl: 3600 },
    });
    const proxy = await h.manager({ tls: false });
    const port = proxy.endpointFor("bench-pg")?.port;
    if (!port) throw new Error("no listener");
    const lease = await h.checkout("bench-pg", { ttl: 3600 });
    // Same account both ways: the bench reveals its password for the direct runs.
    const cred = await h.node.leaseService.credential(lease.token, lease.leaseId, { requestId: "bench" });
    const direct: Target = { port: cluster.port, user: cred.username, password: cred.password };
    const proxied: Target = { port, user: lease.leaseId, password: lease.token };

    console.log(`pgbench -S -T ${seconds} -c ${clients} (select-only), same server, same account, same run`);
    // The sidecar is a long-running process: warm its JIT up before measuring.
    await tool("pgbench", ["-S", "-n", "-T", "2", "-c", String(clients)], env(proxied));
    const d1 = await throughput(direct);
    const p1 = await throughput(proxied);
    const d2 = await throughput(direct);
    const p2 = await throughput(proxied);
    const dTps = (d1.tps + d2.tps) / 2;
    const pTps = (p1.tps + p2.tps) / 2;
    console.log(
      `  direct : ${fmt(d1.tps)} / ${fmt(d2.tps)} tps (avg latency ${fmt((d1.latencyMs + d2.latencyMs) / 2, 3)} ms)`,
    );
    console.log(
      `  proxied: ${fmt(p1.tps)} / ${fmt(p2.tps)} tps (avg latency ${fmt((p1.latencyMs + p2.latencyMs) / 2, 3)} ms)`,
    );
    console.log(`  ratio  : ${fmt((100 * pTps) / dTps)} % of direct throughput`);
    const perTx = (p1.cpuUs + p2.cpuUs - d1.cpuUs - d2.cpuUs) / (p1.tx + p2.tx);
    console.log(
      `  sidecar CPU per proxied transaction: ${fmt(perTx, 1)} µs (process CPU, minus the same during direct runs)`,
    );
    const dl = await latencies(direct);
    const pl = await latencies(proxied);
    const dp50 = quantile(dl, 0.5);
    const pp50 = quantile(pl, 0.5);
    console.log("single client (-c 1), per-transaction latency from pgbench's log:");
    console.log(`  direct : p50 ${fmt(dp50, 0)} µs, p99 ${fmt(quantile(dl, 0.99), 0)} µs (${dl.length} tx)`);
    console.log(`  proxied: p50 ${fmt(pp50, 0)} µs, p99 ${fmt(quantile(pl, 0.99), 0)} µs (${pl.length} tx)`);
    console.log(`  added  : p50 ${fmt(pp50 - dp50, 0)} µs`);
  } finally {
    await h.close();
    await cluster.stop();
  }
}

await main();
