/**
 * An ldapts search loop (a base search of the account's own entry, one request in flight per
 * connection) against a private slapd: direct, through a bare Node relay (`socket.pipe`, the
 * floor any Node listener can reach here, bench/proxy-floor.ts) and through the LDAP listener,
 * as the same account, in one run. The client runs in a child process, so this process's CPU
 * is the listener's (or the bare relay's).
 *
 *   npx tsx bench/proxy-ldap.ts [--seconds 5] [--clients 8] [--runs 2] [--quick]
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { startProxyHarness } from "../test/proxy/harness.js";
import { startSlapd } from "../test/support/slapd.js";
import { bareNodeRelay, fmt, numberArg as arg, quick, startBoth } from "./proxy-bench-support.js";

const seconds = arg("seconds", quick ? 2 : 5);
const clients = arg("clients", 8);
const runs = arg("runs", quick ? 1 : 2);

/** The client loop, run by a child Node: prints `{ searches, p50us }` as JSON. */
const CLIENT = `
const { Client } = require("ldapts");
const { url, dn, base, clients, ms } = JSON.parse(process.env.BENCH);
(async () => {
  const conns = Array.from({ length: clients }, () => new Client({ url, timeout: 10000 }));
  for (const c of conns) await c.bind(dn, process.env.BENCH_PASSWORD);
  const lat = [];
  let searches = 0;
  const end = Date.now() + ms;
  await Promise.all(conns.map(async (c) => {
    while (Date.now() < end) {
      const t = process.hrtime.bigint();
      const r = await c.search(base, { scope: "base", attributes: ["uid"] });
      if (r.searchEntries.length !== 1) throw new Error("no entry");
      lat.push(Number(process.hrtime.bigint() - t) / 1000);
      searches++;
    }
  }));
  await Promise.all(conns.map((c) => c.unbind()));
  lat.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ searches, p50us: lat[Math.floor(lat.length / 2)] }));
})().catch((e) => { console.error(e.message); process.exit(1); });
`;

interface Result {
  readonly rate: number;
  readonly p50us: number;
  /** CPU of this process (the listener or the relay) per search, µs. */
  readonly cpuUs: number;
}

function load(url: string, dn: string, base: string, password: string, ms: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const cpu0 = process.cpuUsage();
    const child = spawn(process.execPath, ["-e", CLIENT], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        BENCH: JSON.stringify({ url, dn, base, clients, ms }),
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
      const r = JSON.parse(out) as { searches: number; p50us: number };
      resolve({
        rate: r.searches / (ms / 1000),
        p50us: r.p50us,
        cpuUs: (cpu.user + cpu.system) / Math.max(1, r.searches),
      });
    });
  });
}

async function main(): Promise<void> {
  const [slapd, h] = await startBoth(startSlapd(), startProxyHarness({ name: "bench-ldap" }), {
    a: (x) => x.stop(),
    b: (x) => x.close(),
  });
  try {
    const account = "bench_ldap";
    await slapd.addUser(account, randomBytes(18).toString("base64url"));
    await h.register({
      name: "bench-ldap",
      adapter: "ldap",
      connection: { url: slapd.url, accountDn: slapd.accountDnTemplate },
      admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
      accounts: [account],
      proxy: { port: 0 },
      lease: { defaultTtl: 3600, maxTtl: 3600 },
    });
    const proxy = await h.manager({ maxConnectionsPerLease: clients + 8 });
    const port = proxy.endpointFor("bench-ldap")?.port;
    if (!port) throw new Error("no listener");
    const lease = await h.checkout("bench-ldap", { ttl: 3600 });
    const cred = await h.node.leaseService.credential(lease.token, lease.leaseId, { requestId: "bench" });
    const relay = await bareNodeRelay(slapd.port);
    const dn = `uid=${account},${slapd.peopleDn}`;
    console.log(
      `ldapts search (base, own entry) loop, ${clients} connections x ${seconds} s, same slapd, same account, same run (no TLS)`,
    );
    const ms = seconds * 1000;
    const paths = {
      direct: () => load(slapd.url, dn, dn, cred.password, ms),
      "bare relay": () => load(`ldap://127.0.0.1:${relay.port}`, dn, dn, cred.password, ms),
      listener: () => load(`ldap://127.0.0.1:${port}`, `cn=${lease.leaseId}`, dn, lease.token, ms),
    } as const;
    type Path = keyof typeof paths;
    // Warm the listener's JIT up, as a long-running sidecar's is.
    await paths.listener();
    await paths["bare relay"]();
    const results = new Map<Path, Result[]>();
    for (let i = 0; i < runs; i++) {
      for (const p of Object.keys(paths) as Path[])
        results.set(p, [...(results.get(p) ?? []), await paths[p]()]);
    }
    relay.server.close();
    const avg = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const rate = (p: Path) => avg((results.get(p) ?? []).map((r) => r.rate));
    for (const [p, rs] of results) {
      const line = [
        `${p.padEnd(10)}: ${rs.map((r) => fmt(r.rate, 0)).join(" / ")} searches/s`,
        `${fmt((100 * rate(p)) / rate("direct"), 0)} % of direct`,
        `${fmt((100 * rate(p)) / rate("bare relay"), 0)} % of the bare relay`,
        `p50 ${fmt(avg(rs.map((r) => r.p50us)), 0)} µs`,
        p === "direct" ? "" : `this process ${fmt(avg(rs.map((r) => r.cpuUs)), 1)} µs CPU per search`,
      ];
      console.log(`  ${line.filter(Boolean).join(", ")}`);
    }
  } finally {
    await h.close();
    await slapd.stop();
  }
}

await main();
