/**
 * redis-benchmark (SET, GET; no pipelining) through the Redis listener against direct to the
 * same private redis-server, as the same ACL user, in one run.
 *
 *   npx tsx bench/proxy-redis.ts [--requests 100000] [--clients 50] [--pipeline 1]
 */
import { randomBytes } from "node:crypto";
import { startPrivateRedis } from "../test/proxy/redis-server.js";
import { startProxyHarness } from "../test/proxy/harness.js";
import { fmt, startBoth, tool } from "./proxy-bench-support.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

const requests = arg("requests", 100_000);
const clients = arg("clients", 50);
const pipeline = arg("pipeline", 1);

interface Row {
  readonly rps: number;
  readonly p50: number;
}

async function bench(port: number, user: string, password: string, c = clients): Promise<Map<string, Row>> {
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
      String(requests),
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
  const [server, h] = await startBoth(startPrivateRedis(users), startProxyHarness({ name: "bench-redis" }), {
    a: (x) => x.stop(),
    b: (x) => x.close(),
  });
  try {
    await h.register({
      name: "bench-redis",
      adapter: "redis-acl",
      connection: { host: server.host, port: server.port },
      admin: { username: "bench_admin", password: adminPassword },
      accounts: ["bench_app"],
      proxy: { port: 0 },
      lease: { defaultTtl: 3600, maxTtl: 3600 },
    });
    const proxy = await h.manager();
    const port = proxy.endpointFor("bench-redis")?.port;
    if (!port) throw new Error("no listener");
    const lease = await h.checkout("bench-redis", { ttl: 3600 });
    const cred = await h.node.leaseService.credential(lease.token, lease.leaseId, { requestId: "bench" });
    console.log(
      `redis-benchmark -t set,get -n ${requests} -c ${clients} -P ${pipeline}, same server, same ACL user, same run`,
    );
    const cpu = { direct: 0, proxied: 0 };
    const timed = async (which: "direct" | "proxied", p: number, u: string, pw: string) => {
      const before = process.cpuUsage();
      const rows = await bench(p, u, pw);
      const used = process.cpuUsage(before);
      cpu[which] += used.user + used.system;
      return rows;
    };
    // The sidecar is a long-running process: warm its JIT up before measuring.
    await bench(port, lease.leaseId, lease.token);
    const direct = await timed("direct", server.port, cred.username, cred.password);
    const proxied = await timed("proxied", port, lease.leaseId, lease.token);
    const direct2 = await timed("direct", server.port, cred.username, cred.password);
    const proxied2 = await timed("proxied", port, lease.leaseId, lease.token);
    for (const t of ["SET", "GET"]) {
      const d = [direct.get(t), direct2.get(t)];
      const p = [proxied.get(t), proxied2.get(t)];
      const dr = ((d[0]?.rps ?? 0) + (d[1]?.rps ?? 0)) / 2;
      const pr = ((p[0]?.rps ?? 0) + (p[1]?.rps ?? 0)) / 2;
      console.log(
        `  ${t}: direct ${fmt(dr, 0)} req/s (p50 ${d[0]?.p50} ms), proxied ${fmt(pr, 0)} req/s (p50 ${p[0]?.p50} ms), ratio ${fmt((100 * pr) / dr)} %`,
      );
    }
    // Two runs of two tests (SET, GET) each: 4 × requests through the proxy.
    const perRequest = (cpu.proxied - cpu.direct) / (4 * requests);
    console.log(
      `  sidecar CPU per proxied request: ${fmt(perRequest, 1)} µs (process CPU, minus the same during direct runs)`,
    );
    const d1 = (await bench(server.port, cred.username, cred.password, 1)).get("GET");
    const p1 = (await bench(port, lease.leaseId, lease.token, 1)).get("GET");
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
