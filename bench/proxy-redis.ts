/**
 * redis-benchmark (SET, GET; no pipelining) through the Redis listener against direct to the
 * same private redis-server, as the same ACL user, in one run.
 *
 * A bare Node relay (`socket.pipe`, same process) runs in the same loop: the floor any Node
 * listener can reach here. CPU per request is split between the proxy, redis-benchmark and
 * redis-server.
 *
 * With `--statement-policy` the listener decides every command by Cedar (`proxy.statementPolicy`,
 * a policy allowing reads, writes and connection commands).
 *
 *   npx tsx bench/proxy-redis.ts [--requests 100000] [--clients 50] [--pipeline 1] [--runs 2] [--profile FILE] [--statement-policy]
 */
import { randomBytes } from "node:crypto";
import { startPrivateRedis } from "../test/proxy/redis-server.js";
import { startProxyHarness } from "../test/proxy/harness.js";
import {
  bareNodeRelay,
  type CpuSplit,
  cpuLine,
  fmt,
  measureCpu,
  meanCpu,
  profiled,
  startBoth,
  numberArg as arg,
  quick,
  stringArg,
  tool,
} from "./proxy-bench-support.js";

const requests = arg("requests", quick ? 40_000 : 100_000);
const clients = arg("clients", 50);
const pipeline = arg("pipeline", 1);
const runs = arg("runs", quick ? 1 : 2);
const profileFile = stringArg("profile");
const statementPolicy = process.argv.includes("--statement-policy");

/** Checkouts with intent read; with --statement-policy, reads, writes and connection commands. */
const POLICY = `permit (principal, action in [Action::"checkout", Action::"renew", Action::"reveal"], resource)
when { context.intent == "read" };
permit (principal, action == Action::"statement", resource)
when { ["read", "write", "connection"].contains(context.statement_kind) };
`;

interface Row {
  readonly rps: number;
  readonly p50: number;
}

async function bench(
  port: number,
  user: string,
  password: string,
  c = clients,
  n = requests,
): Promise<Map<string, Row>> {
  // redis-benchmark takes the password only as -a: a throwaway lease on a private server.
  const out = await tool(
    "redis-benchmark",
    [
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "--user",
      user,
      "-a",
      password,
      "-t",
      "set,get",
      "-n",
      String(n),
      "-c",
      String(c),
      "-P",
      String(pipeline),
      "--csv",
    ],
    {},
  );
  const rows = new Map<string, Row>();
  for (const line of out.split("\n")) {
    const cells = line.split(",").map((c) => c.replace(/"/g, ""));
    if ((cells[0] === "SET" || cells[0] === "GET") && cells.length >= 5) {
      rows.set(cells[0], { rps: Number(cells[1]), p50: Number(cells[4]) });
    }
  }
  return rows;
}

async function main(): Promise<void> {
  const adminPassword = randomBytes(18).toString("hex");
  const users = [
    `bench_admin on >${adminPassword} ~* &* +@all`,
    `bench_app on >${randomBytes(12).toString("hex")} ~* &* +@all`,
  ];
  const [server, h] = await startBoth(
    startPrivateRedis(users),
    startProxyHarness({ name: "bench-redis", policy: POLICY }),
    {
      a: (x) => x.stop(),
      b: (x) => x.close(),
    },
  );
  try {
    await h.register({
      name: "bench-redis",
      adapter: "redis-acl",
      connection: { host: server.host, port: server.port },
      admin: { username: "bench_admin", password: adminPassword },
      accounts: ["bench_app"],
      proxy: { port: 0, statementPolicy },
      lease: { defaultTtl: 3600, maxTtl: 3600 },
    });
    // redis-benchmark opens all its clients with one lease: above the per-lease default of 16.
    const proxy = await h.manager({ maxConnectionsPerLease: clients + 8, policy: h.node.policy });
    const port = proxy.endpointFor("bench-redis")?.port;
    if (!port) throw new Error("no listener");
    const lease = await h.checkout("bench-redis", { ttl: 3600 });
    const cred = await h.node.leaseService.credential(lease.token, lease.leaseId, { requestId: "bench" });
    console.log(
      `redis-benchmark -t set,get -n ${requests} -c ${clients} -P ${pipeline}, same server, same ACL user, same run${statementPolicy ? ", statement policy on" : ""}`,
    );
    const relay = await bareNodeRelay(server.port);
    type Run = { rows: Map<string, Row>; cpu: CpuSplit };
    const timed = async (p: number, u: string, pw: string): Promise<Run> => {
      const [rows, cpu] = await measureCpu(server.pid, () => bench(p, u, pw));
      return { rows, cpu };
    };
    // The sidecar is a long-running process: warm its JIT up before measuring.
    const warmup = Math.ceil(requests / 4);
    await bench(port, lease.leaseId, lease.token, clients, warmup);
    await bench(relay.port, cred.username, cred.password, clients, warmup);
    const ds: Run[] = [];
    const bs: Run[] = [];
    const ps: Run[] = [];
    for (let i = 0; i < runs; i++) {
      ds.push(await timed(server.port, cred.username, cred.password));
      bs.push(await timed(relay.port, cred.username, cred.password));
      ps.push(
        await profiled(i === 0 ? profileFile : undefined, () => timed(port, lease.leaseId, lease.token)),
      );
    }
    relay.server.close();
    const avg = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    for (const t of ["SET", "GET"]) {
      const rps = (rs: readonly Run[]) => rs.map((r) => r.rows.get(t)?.rps ?? 0);
      const d = avg(rps(ds));
      const line = (name: string, rs: readonly Run[]) =>
        `${name} ${fmt(avg(rps(rs)), 0)} req/s (p50 ${rs[0]?.rows.get(t)?.p50} ms, ${fmt((100 * avg(rps(rs))) / d)} % of direct; per run ${rps(
          rs,
        )
          .map((x, i) => fmt((100 * x) / (rps(ds)[i] ?? 1), 0))
          .join(", ")} %)`;
      console.log(`  ${t}: ${line("direct", ds)}`);
      console.log(`       ${line("bare relay", bs)}`);
      console.log(`       ${line("listener", ps)}`);
    }
    // Each run is two tests (SET, GET) of `requests` each.
    const n = 2 * requests;
    console.log(`  CPU, direct    : ${cpuLine(meanCpu(ds.map((r) => r.cpu)), n, false)}`);
    console.log(`  CPU, bare relay: ${cpuLine(meanCpu(bs.map((r) => r.cpu)), n, true)}`);
    console.log(`  CPU, listener  : ${cpuLine(meanCpu(ps.map((r) => r.cpu)), n, true)}`);
    // One client waits for each answer: a p50 needs thousands of requests, not the whole run's.
    const single = Math.min(requests, quick ? 3000 : 10_000);
    const d1 = (await bench(server.port, cred.username, cred.password, 1, single)).get("GET");
    const p1 = (await bench(port, lease.leaseId, lease.token, 1, single)).get("GET");
    if (d1 && p1) {
      console.log(
        `  single client GET: direct p50 ${d1.p50} ms, proxied p50 ${p1.p50} ms, added ${fmt((p1.p50 - d1.p50) * 1000, 0)} µs`,
      );
    }
  } finally {
    await h.close();
    await server.stop();
  }
}

await main();
