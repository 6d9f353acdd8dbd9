/**
 * pgbench -S (select-only) through the PostgreSQL listener against direct to the same server,
 * as the same account, in one run. Prints throughput of both, the ratio, and the latency the
 * proxy adds (p50 and average of single-client runs).
 *
 * A second listener with statement policy on (`proxy.statementPolicy`: each statement parsed by
 * PostgreSQL's grammar and decided by Cedar, "select from pgbench_accounts and pgbench_branches" permitted) runs in
 * the same loop, as a second account of the same server; and the same listener again with
 * statement audit `text` (`--profile FILE` profiles the first run of each listener), with the
 * statement records left out of the Redis stream (`audit.stream.statements: false`, the default)
 * and once more with them mirrored (`true`).
 *
 * The paths run in rounds, the order rotating each round; ratios are taken within a round and
 * the median over the rounds is printed (the machine's speed drifts more between rounds than
 * the paths differ).
 *
 * A bare Node relay (`socket.pipe`, in the same process) runs in the same loop: the floor
 * any Node listener can reach on this machine. Also splits the CPU time of each run between the proxy, pgbench and postgres: on a small
 * machine the three share the cores, so the proxy's CPU per transaction bounds the ratio.
 *
 * `--statement-audit` runs, instead, the statement-audit section (bench/proxy-pg-audit.ts):
 * listeners with `proxy.auditStatements` none, digest and text against direct, `pgbench -S` and
 * an INSERT loop (`--inserts N`, default 5000), interleaved `--runs` times (default 3).
 *
 *   npx tsx bench/proxy-pg.ts [--seconds 10] [--clients 4] [--runs 5] [--profile FILE]
 *   npx tsx bench/proxy-pg.ts --statement-audit [--seconds 10] [--runs 3] [--inserts 5000]
 */
import { ProcCallerAttestor } from "../sidecar/attest/index.js";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { startScramPostgres } from "../test/support/pg-cluster.js";
import { startProxyHarness } from "../test/proxy/harness.js";
import { statementAuditBench } from "./proxy-pg-audit.js";
import {
  bareNodeRelay,
  type CpuSplit,
  cpuLine,
  fmt,
  measureCpu,
  meanCpu,
  profiled,
  quantile,
  startBoth,
  numberArg as arg,
  quick,
  stringArg,
  tool,
} from "./proxy-bench-support.js";

const seconds = arg("seconds", quick ? 3 : 10);
const clients = arg("clients", 4);
const runs = arg("runs", quick ? 1 : 5);
const profileFile = stringArg("profile");
const auditOnly = process.argv.includes("--statement-audit");
let postmasterPid = 0;

/** The harness' checkout permit, and the statement policy of the `bench-pg-stmt` listener. */
const POLICY = `@id("bench")
permit (principal, action in [Action::"checkout", Action::"reveal", Action::"renew"], resource)
when { context.intent == "read" };
@id("bench-selects")
permit (principal, action == Action::"statement", resource == Resource::"bench-pg-stmt")
when { context.statement_kind == "select" && ["pgbench_accounts", "pgbench_branches"].containsAll(context.tables) };
`;

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

async function throughput(t: Target): Promise<{ tps: number; latencyMs: number; tx: number; cpu: CpuSplit }> {
  const [out, cpu] = await measureCpu(postmasterPid, () =>
    tool(
      "pgbench",
      ["-S", "-n", "-T", String(seconds), "-c", String(clients), "-j", String(Math.min(clients, 2))],
      env(t),
    ),
  );
  const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1]);
  const latencyMs = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]);
  const tx = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1]);
  return { tps, latencyMs, tx, cpu };
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
        String(Math.max(quick ? 2 : 3, Math.ceil(seconds / 2))),
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
  const [cluster, h] = await startBoth(
    startScramPostgres(),
    startProxyHarness({ name: "bench-pg", policy: POLICY, auditStream: true }),
    {
      a: (c) => c.stop(),
      b: (x) => x.close(),
    },
  );
  try {
    postmasterPid = Number((await readFile(join(cluster.dataDir, "postmaster.pid"), "utf8")).split("\n")[0]);
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
    await su.query(`CREATE ROLE bench_app_stmt LOGIN PASSWORD '${randomBytes(12).toString("hex")}'`);
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
    await su2.query("GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench_app, bench_app_stmt");
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
    await h.register({
      name: "bench-pg-stmt",
      adapter: "postgres",
      connection: { host: cluster.host, port: cluster.port, database: "postgres" },
      admin: { username: "bench_admin", password: adminPassword },
      accounts: ["bench_app_stmt"],
      proxy: { port: 0, statementPolicy: true },
      lease: { defaultTtl: 3600, maxTtl: 3600 },
    });
    // As `leasehold serve` wires it: the listener attests each new connection's process, and the
    // lease is bound to the uid of the process that checked out (identity.bindCaller's default).
    const attestor = new ProcCallerAttestor();
    const proxy = await h.manager({ tls: false, attestor, policy: h.node.policy });
    const port = proxy.endpointFor("bench-pg")?.port;
    if (!port) throw new Error("no listener");
    const lease = await h.checkout("bench-pg", {
      ttl: 3600,
      caller: () => attestor.attestProcess("tcp", process.pid),
    });
    // Same account both ways: the bench reveals its password for the direct runs.
    const cred = await h.node.leaseService.credential(lease.token, lease.leaseId, { requestId: "bench" });
    const direct: Target = { port: cluster.port, user: cred.username, password: cred.password };
    const proxied: Target = { port, user: lease.leaseId, password: lease.token };
    const stmtPort = proxy.endpointFor("bench-pg-stmt")?.port;
    if (!stmtPort) throw new Error("no statement-policy listener");
    const stmtLease = await h.checkout("bench-pg-stmt", {
      ttl: 3600,
      caller: () => attestor.attestProcess("tcp", process.pid),
    });
    const judged: Target = { port: stmtPort, user: stmtLease.leaseId, password: stmtLease.token };
    // The same listener with statement audit `text` (every statement's record, with its text).
    const proxyText = await h.manager({
      tls: false,
      attestor,
      policy: h.node.policy,
      auditStatements: "text",
    });
    const textPort = proxyText.endpointFor("bench-pg-stmt")?.port;
    if (!textPort) throw new Error("no statement-policy listener with statement audit");
    const judgedText: Target = { ...judged, port: textPort };
    if (auditOnly) {
      await statementAuditBench(h, {
        seconds,
        clients,
        runs: arg("runs", quick ? 1 : 3),
        inserts: arg("inserts", quick ? 1000 : 5000),
        postmasterPid,
        env,
        direct,
        superuser: { port: cluster.port, user: "postgres", password: cluster.superuser.password },
        lease,
        profile: profileFile,
      });
      return;
    }

    const relay = await bareNodeRelay(cluster.port);
    const bare: Target = { ...direct, port: relay.port };
    console.log(`pgbench -S -T ${seconds} -c ${clients} (select-only), same server, same account, same run`);
    // The sidecar is a long-running process: warm its JIT up before measuring.
    await tool("pgbench", ["-S", "-n", "-T", "2", "-c", String(clients)], env(proxied));
    await tool("pgbench", ["-S", "-n", "-T", "1", "-c", String(clients)], env(bare));
    await tool("pgbench", ["-S", "-n", "-T", "2", "-c", String(clients)], env(judged));
    await tool("pgbench", ["-S", "-n", "-T", "2", "-c", String(clients)], env(judgedText));
    type Run = Awaited<ReturnType<typeof throughput>>;
    /** Statement audit text with the statement records mirrored to the stream (audit.stream.statements). */
    const mirrored = async (): Promise<Run> => {
      h.auditMirror.statements = true;
      try {
        return await throughput(judgedText);
      } finally {
        h.auditMirror.statements = false;
      }
    };
    const paths = {
      direct: () => throughput(direct),
      bare: () => throughput(bare),
      listener: () => throughput(proxied),
      policy: () => throughput(judged),
      text: () => throughput(judgedText),
      "text-stream": mirrored,
    } as const;
    type Path = keyof typeof paths;
    const names = Object.keys(paths) as Path[];
    const got = Object.fromEntries(names.map((n) => [n, [] as Run[]])) as Record<Path, Run[]>;
    for (let i = 0; i < runs; i++) {
      // Each round starts one path later: no path always runs first, or right after another.
      const order = [...names.slice(i % names.length), ...names.slice(0, i % names.length)];
      for (const name of order) {
        // `--profile FILE`: the first round's listener runs, as FILE-listener, FILE-policy, FILE-text, FILE-text-stream.
        const file =
          i === 0 && profileFile && name !== "direct" && name !== "bare"
            ? `${profileFile}-${name}.cpuprofile`
            : undefined;
        got[name].push(await profiled(file, paths[name]));
      }
    }
    relay.server.close();
    const { direct: ds, bare: bs, listener: ps, policy: js, text: ts, "text-stream": ms } = got;
    const avg = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const median = (xs: readonly number[]) => quantile(xs, 0.5);
    const dTps = avg(ds.map((r) => r.tps));
    const list = (rs: readonly Run[]) => rs.map((r) => fmt(r.tps, 0)).join(" / ");
    const row = (name: string, rs: readonly Run[], proxiedCpu: boolean) => {
      console.log(
        `  ${name}: ${list(rs)} tps, avg latency ${fmt(avg(rs.map((r) => r.latencyMs)), 3)} ms, ${fmt((100 * avg(rs.map((r) => r.tps))) / dTps)} % of direct (per run: ${rs.map((r, i) => fmt((100 * r.tps) / (ds[i]?.tps ?? 1), 0)).join(", ")} %)`,
      );
      console.log(
        `           ${cpuLine(meanCpu(rs.map((r) => r.cpu)), avg(rs.map((r) => r.tx)), proxiedCpu)}`,
      );
    };
    row("direct  ", ds, false);
    row("bare    ", bs, true);
    row("listener", ps, true);
    row("listener, statement policy", js, true);
    row("listener, statement policy, statement audit text", ts, true);
    row("  same, statement records also in the Redis stream", ms, true);
    // Each ratio is taken within a round (the machine's speed drifts between rounds), then the
    // median over the rounds.
    const vs = (rs: readonly Run[], base: readonly Run[]) => {
      const per = rs.map((r, i) => r.tps / (base[i]?.tps ?? Number.NaN));
      return `${fmt(median(per), 2)} (per round: ${per.map((x) => fmt(x, 2)).join(", ")})`;
    };
    console.log(`median of the rounds' ratios (${runs} rounds, order rotating):`);
    console.log(`  vs the bare relay: listener ${vs(ps, bs)}`);
    console.log(`                     statement policy ${vs(js, bs)}`);
    console.log(`                     policy + statement audit text ${vs(ts, bs)}`);
    console.log(`                     same, statements in the stream ${vs(ms, bs)}`);
    console.log(`  statement audit text vs none (policy on): ${vs(ts, js)}`);
    console.log(`  same, statements in the stream, vs none: ${vs(ms, js)}`);
    console.log(`  vs direct: listener ${vs(ps, ds)}; policy + text ${vs(ts, ds)}; bare relay ${vs(bs, ds)}`);
    const dl = await latencies(direct);
    const pl = await latencies(proxied);
    const dp50 = quantile(dl, 0.5);
    const pp50 = quantile(pl, 0.5);
    console.log("single client (-c 1), per-transaction latency from pgbench's log:");
    console.log(`  direct : p50 ${fmt(dp50, 0)} µs, p99 ${fmt(quantile(dl, 0.99), 0)} µs (${dl.length} tx)`);
    console.log(`  proxied: p50 ${fmt(pp50, 0)} µs, p99 ${fmt(quantile(pl, 0.99), 0)} µs (${pl.length} tx)`);
    console.log(`  added  : p50 ${fmt(pp50 - dp50, 0)} µs`);
    // A login per transaction (pgbench -C): SCRAM at the server, and at the listener the lease
    // token's check (and the caller's attestation, issue 22) for every new connection.
    const login = async (t: Target) => {
      const out = await tool(
        "pgbench",
        ["-S", "-n", "-C", "-T", String(Math.max(2, Math.round(seconds / 2))), "-c", "1"],
        env(t),
      );
      return Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]);
    };
    const dLogin = await login(direct);
    const pLogin = await login(proxied);
    console.log("a new connection per transaction (pgbench -S -C -c 1), mean latency incl. login:");
    console.log(
      `  direct : ${fmt(dLogin, 3)} ms, listener: ${fmt(pLogin, 3)} ms, ratio ${fmt(pLogin / dLogin, 2)}×`,
    );
  } finally {
    await h.close();
    await cluster.stop();
  }
}

await main();
