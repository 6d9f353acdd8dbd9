/**
 * A mysql2 query loop (`SELECT ?` through the binary protocol, one statement in flight per
 * connection) against the local MariaDB: direct, through a bare Node relay (`socket.pipe`, the
 * floor any Node listener can reach here, bench/proxy-floor.ts) and through the MySQL listener,
 * as the same account, in one run; and through the listener of a sealed (`reveal: false`)
 * resource, whose statements are read whole for the password filter; and through the listener of
 * a resource under statement policy (`proxy.statementPolicy`: each command held whole, each new
 * statement text read and decided by Cedar). The client runs in a child process, so this
 * process's CPU is the listener's (or the bare relay's). `--mode query` sends text statements
 * instead (`query("SELECT ?")`: the value is written into the text, a new text each time, so
 * under policy each is parsed; Cedar's decision for (select, no table) is cached).
 *
 * `--audit text` (or `digest`) records each statement (`proxy.auditStatements`) on every listener;
 * `--profile FILE` writes a V8 CPU profile of this process during the first measured run of the
 * statement-policy listener (`--profile-path NAME`: of another path, by its printed name);
 * `--only "bare relay|listener, policy"` runs those paths alone. The paths run in rounds, the
 * order rotating each round; the median of each round's ratio to the bare relay is printed.
 *
 *   npx tsx bench/proxy-mysql.ts [--seconds 5] [--clients 8] [--runs 2] [--mode execute|query]
 *     [--audit none|digest|text] [--profile FILE.cpuprofile]
 *     [--profile-path "listener"] [--only "bare relay|listener, policy"] [--quick]
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { startProxyHarness } from "../test/proxy/harness.js";
import { createMariadbAccount, dropMariadbAccounts, mariadbRoot } from "../test/support/mariadb.js";
import { bareNodeRelay, fmt, numberArg as arg, profiled, quick, stringArg } from "./proxy-bench-support.js";

const seconds = arg("seconds", quick ? 2 : 5);
const clients = arg("clients", 8);
const runs = arg("runs", quick ? 1 : 2);
const modeAt = process.argv.indexOf("--mode");
const mode = modeAt > 0 && process.argv[modeAt + 1] === "query" ? "query" : "execute";
const auditArg = stringArg("audit");
const auditStatements = auditArg === "text" || auditArg === "digest" ? auditArg : "none";
const profileFile = stringArg("profile");

/** Checkout for anyone; under statement policy, selects without a table. */
const POLICY = `permit (principal, action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"], resource);
@id("selects")
permit (principal, action == Action::"statement", resource)
when { context.statement_kind == "select" && context.tables.isEmpty() };
`;

/** The client loop, run by a child Node: prints `{ queries, p50us }` as JSON. */
const CLIENT = `
const mysql = require("mysql2/promise");
const { host, port, user, clients, ms, mode } = JSON.parse(process.env.BENCH);
(async () => {
  const conns = await Promise.all(Array.from({ length: clients }, () =>
    mysql.createConnection({ host, port, user, password: process.env.BENCH_PASSWORD })));
  for (const c of conns) await c.execute("SELECT ? AS n", [0]);
  const lat = [];
  let queries = 0;
  const end = Date.now() + ms;
  await Promise.all(conns.map(async (c) => {
    while (Date.now() < end) {
      const t = process.hrtime.bigint();
      await c[mode]("SELECT ? AS n", [queries]);
      lat.push(Number(process.hrtime.bigint() - t) / 1000);
      queries++;
    }
  }));
  await Promise.all(conns.map((c) => c.end()));
  lat.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ queries, p50us: lat[Math.floor(lat.length / 2)] }));
})().catch((e) => { console.error(e.message); process.exit(1); });
`;

interface Result {
  readonly qps: number;
  readonly p50us: number;
  /** CPU of this process (the listener or the relay) per query, µs. */
  readonly cpuUs: number;
}

function load(port: number, user: string, password: string, ms: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const cpu0 = process.cpuUsage();
    const child = spawn(process.execPath, ["-e", CLIENT], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        BENCH: JSON.stringify({ host: "127.0.0.1", port, user, clients, ms, mode }),
        BENCH_PASSWORD: password,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.once("close", (code) => {
      if (code !== 0) {
        reject(new Error(`client exited ${code}: ${err.slice(-300)}`));
        return;
      }
      const cpu = process.cpuUsage(cpu0);
      const r = JSON.parse(out) as { queries: number; p50us: number };
      resolve({
        qps: r.queries / (ms / 1000),
        p50us: r.p50us,
        cpuUs: (cpu.user + cpu.system) / Math.max(1, r.queries),
      });
    });
  });
}

async function main(): Promise<void> {
  const tag = randomBytes(3).toString("hex");
  const account = `bench${tag}_app`;
  const sealedAccount = `bench${tag}_sealed`;
  const policyAccount = `bench${tag}_policy`;
  const admin = { username: `bench${tag}_admin`, password: randomBytes(18).toString("base64url") };
  const root = await mariadbRoot();
  try {
    await createMariadbAccount(root, account, randomBytes(18).toString("base64url"));
    await createMariadbAccount(root, sealedAccount, randomBytes(18).toString("base64url"));
    await createMariadbAccount(root, policyAccount, randomBytes(18).toString("base64url"));
    await createMariadbAccount(root, admin.username, admin.password);
    await root.query(`GRANT CREATE USER ON *.* TO '${admin.username}'@'%'`);
  } finally {
    await root.end();
  }
  const h = await startProxyHarness({ name: "bench-mysql", policy: POLICY });
  try {
    await h.register({
      name: "bench-mysql",
      adapter: "mysql",
      connection: { host: "127.0.0.1", port: 3306 },
      admin,
      accounts: [account],
      proxy: { port: 0 },
      lease: { defaultTtl: 3600, maxTtl: 3600 },
    });
    // The recommended mode: the password never leaves the sidecar and password statements are
    // filtered (each statement read whole before it is forwarded).
    await h.register({
      name: "bench-mysql-sealed",
      adapter: "mysql",
      connection: { host: "127.0.0.1", port: 3306 },
      admin,
      accounts: [sealedAccount],
      reveal: false,
      proxy: { port: 0 },
      lease: { defaultTtl: 3600, maxTtl: 3600 },
    });
    await h.register({
      name: "bench-mysql-policy",
      adapter: "mysql",
      connection: { host: "127.0.0.1", port: 3306 },
      admin,
      accounts: [policyAccount],
      proxy: { port: 0, statementPolicy: true },
      lease: { defaultTtl: 3600, maxTtl: 3600 },
    });
    const proxy = await h.manager({
      maxConnectionsPerLease: clients + 8,
      policy: h.node.policy,
      auditStatements,
    });
    const policyPort = proxy.endpointFor("bench-mysql-policy")?.port;
    if (!policyPort) throw new Error("no statement-policy listener");
    const policyLease = await h.checkout("bench-mysql-policy", { ttl: 3600 });
    const sealedPort = proxy.endpointFor("bench-mysql-sealed")?.port;
    if (!sealedPort) throw new Error("no sealed listener");
    const sealedLease = await h.checkout("bench-mysql-sealed", { ttl: 3600 });
    const port = proxy.endpointFor("bench-mysql")?.port;
    if (!port) throw new Error("no listener");
    const lease = await h.checkout("bench-mysql", { ttl: 3600 });
    const cred = await h.node.leaseService.credential(lease.token, lease.leaseId, { requestId: "bench" });
    const relay = await bareNodeRelay(3306);
    console.log(
      `mysql2 ${mode}("SELECT ?") loop, ${clients} connections x ${seconds} s, same MariaDB, same account, same run (listener: no TLS, token by RSA; statement audit ${auditStatements})`,
    );
    const paths = {
      direct: () => load(3306, cred.username, cred.password, seconds * 1000),
      "bare relay": () => load(relay.port, cred.username, cred.password, seconds * 1000),
      listener: () => load(port, lease.leaseId, lease.token, seconds * 1000),
      "listener, sealed": () => load(sealedPort, sealedLease.leaseId, sealedLease.token, seconds * 1000),
      "listener, policy": () => load(policyPort, policyLease.leaseId, policyLease.token, seconds * 1000),
    } as const;
    type Path = keyof typeof paths;
    const profilePath = (stringArg("profile-path") ?? "listener, policy") as Path;
    if (!(profilePath in paths)) throw new Error(`--profile-path: one of ${Object.keys(paths).join(", ")}`);
    // Warm the listener's JIT up, as a long-running sidecar's is.
    await paths.listener();
    await paths["bare relay"]();
    await paths["listener, policy"]();
    const results = new Map<Path, Result[]>();
    // `--only "bare relay|listener, policy"`: those paths alone (for a profiler or strace attached from outside).
    const only = stringArg("only")?.split("|");
    const unknown = only?.find((p) => !(p in paths));
    if (unknown !== undefined)
      throw new Error(`--only: '${unknown}' is not one of ${Object.keys(paths).join(", ")}`);
    const names = (Object.keys(paths) as Path[]).filter((p) => !only || only.includes(p));
    for (let i = 0; i < runs; i++) {
      // Each round starts one path later: no path always runs first, or right after another.
      for (const p of [...names.slice(i % names.length), ...names.slice(0, i % names.length)]) {
        const file = i === 0 && p === profilePath ? profileFile : undefined;
        results.set(p, [...(results.get(p) ?? []), await profiled(file, paths[p])]);
      }
    }
    relay.server.close();
    const avg = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const qps = (p: Path) => avg((results.get(p) ?? []).map((r) => r.qps));
    for (const [p, rs] of results) {
      const line = [
        `${p.padEnd(16)}: ${rs.map((r) => fmt(r.qps, 0)).join(" / ")} queries/s`,
        `${fmt((100 * qps(p)) / qps("direct"), 0)} % of direct`,
        `${fmt((100 * qps(p)) / qps("bare relay"), 0)} % of the bare relay`,
        `p50 ${fmt(avg(rs.map((r) => r.p50us)), 0)} µs`,
        p === "direct" ? "" : `this process ${fmt(avg(rs.map((r) => r.cpuUs)), 1)} µs CPU per query`,
      ];
      console.log(`  ${line.filter(Boolean).join(", ")}`);
    }
    // Ratios taken within a round (the machine's speed drifts between rounds), median over them.
    const relayRuns = results.get("bare relay") ?? [];
    const median = (xs: readonly number[]) =>
      [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
    console.log(`median of the rounds' ratios to the bare relay (${runs} rounds, order rotating):`);
    for (const p of names) {
      if (p === "bare relay") continue;
      const per = (results.get(p) ?? []).map((r, i) => r.qps / (relayRuns[i]?.qps ?? Number.NaN));
      console.log(
        `  ${p.padEnd(16)}: ${fmt(median(per), 2)} (per round: ${per.map((x) => fmt(x, 2)).join(", ")})`,
      );
    }
  } finally {
    await h.close();
    await dropMariadbAccounts(account, sealedAccount, policyAccount, admin.username);
  }
}

await main();
