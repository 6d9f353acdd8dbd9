/**
 * The statement-audit section of bench/proxy-pg.ts: the same account through three listeners of
 * one sidecar, statement audit `none`, `digest` and `text` (`proxy.auditStatements`), against
 * direct, interleaved run by run (the machine is shared: compare within a round, not across).
 *
 * - `pgbench -S` (select-only, several clients): throughput.
 * - an INSERT loop: `pgbench -n -t N -c 1` with a one-line script of a small INSERT, one client,
 *   each statement waiting for the one before; wall time and the proxy's CPU per statement.
 *
 * Every record goes to the audit file and, as `leasehold serve` does by default, to the Redis
 * stream. Prints each round (the order rotates from round to round) and the ratio text/none
 * (the cost of statement audit `text`).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { ProxyHarness } from "../test/proxy/harness.js";
import { fmt, measureCpu, profiled, tool } from "./proxy-bench-support.js";

export interface AuditTarget {
  readonly port: number;
  readonly user: string;
  readonly password: string;
}

export interface AuditBenchOptions {
  readonly seconds: number;
  readonly clients: number;
  readonly runs: number;
  readonly inserts: number;
  readonly postmasterPid: number;
  readonly env: (t: AuditTarget) => NodeJS.ProcessEnv;
  readonly direct: AuditTarget;
  /** The superuser, to create the INSERT loop's table. */
  readonly superuser: AuditTarget;
  readonly lease: { readonly leaseId: string; readonly token: string };
  /** A V8 CPU profile of the first round's `text` INSERT loop goes here. */
  readonly profile?: string | undefined;
}

const MODES = ["none", "digest", "text"] as const;
type Mode = (typeof MODES)[number];

async function selectTps(o: AuditBenchOptions, t: AuditTarget): Promise<number> {
  const out = await tool(
    "pgbench",
    ["-S", "-n", "-T", String(o.seconds), "-c", String(o.clients), "-j", String(Math.min(o.clients, 2))],
    o.env(t),
  );
  return Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1]);
}

/** Wall seconds and proxy CPU µs per statement of `inserts` sequential INSERTs. */
async function insertLoop(
  o: AuditBenchOptions,
  t: AuditTarget,
  script: string,
): Promise<{ seconds: number; proxyUs: number }> {
  const t0 = performance.now();
  const [, cpu] = await measureCpu(o.postmasterPid, () =>
    tool("pgbench", ["-n", "-f", script, "-t", String(o.inserts), "-c", "1"], o.env(t)),
  );
  return { seconds: (performance.now() - t0) / 1000, proxyUs: cpu.proxyUs / o.inserts };
}

const range = (xs: readonly number[], digits: number) =>
  `${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)}`;

/** Runs the section on `h` (whose node's audit log is the one measured). */
export async function statementAuditBench(h: ProxyHarness, o: AuditBenchOptions): Promise<void> {
  const su = new pg.Client({
    host: "127.0.0.1",
    port: o.superuser.port,
    user: o.superuser.user,
    password: o.superuser.password,
    database: "postgres",
  });
  await su.connect();
  await su.query("CREATE TABLE IF NOT EXISTS bench_audit_ins (v text)");
  await su.query(`GRANT INSERT ON bench_audit_ins TO ${o.direct.user}`);
  await su.end();
  const dir = await mkdtemp(join(tmpdir(), "leasehold-audit-bench-"));
  const script = join(dir, "insert.sql");
  await writeFile(script, "INSERT INTO bench_audit_ins VALUES ('a small row of text');\n");
  const targets = new Map<Mode | "direct", AuditTarget>([["direct", o.direct]]);
  for (const mode of MODES) {
    const m = await h.manager({ auditStatements: mode });
    const port = m.endpointFor("bench-pg")?.port;
    if (!port) throw new Error(`no listener for audit ${mode}`);
    targets.set(mode, { port, user: o.lease.leaseId, password: o.lease.token });
  }
  const names = ["direct", ...MODES] as const;
  try {
    for (const n of names)
      await tool("pgbench", ["-S", "-n", "-T", "1", "-c", "2"], o.env(targets.get(n) as AuditTarget));
    console.log(
      `statement audit (file + Redis stream): pgbench -S -T ${o.seconds} -c ${o.clients} tps, and ${o.inserts} sequential INSERTs (pgbench -t ${o.inserts} -c 1): s, proxy µs CPU per statement`,
    );
    const tps = new Map<string, number[]>(names.map((n) => [n, []]));
    const ins = new Map<string, number[]>(names.map((n) => [n, []]));
    const cpu = new Map<string, number[]>(names.map((n) => [n, []]));
    for (let i = 0; i < o.runs; i++) {
      const row: string[] = [];
      // A different order each round, so no mode always runs right after another.
      for (const n of [...names.slice(i % names.length), ...names.slice(0, i % names.length)]) {
        const t = targets.get(n) as AuditTarget;
        const s = await selectTps(o, t);
        const w = await profiled(i === 0 && n === "text" ? o.profile : undefined, () =>
          insertLoop(o, t, script),
        );
        tps.get(n)?.push(s);
        ins.get(n)?.push(w.seconds);
        cpu.get(n)?.push(w.proxyUs);
        row.push(`${n} ${fmt(s, 0)} tps / ${fmt(w.seconds, 2)} s / ${fmt(w.proxyUs, 0)} µs`);
      }
      const r = (a: string, b: string, m: Map<string, number[]>) =>
        fmt((100 * (m.get(a)?.[i] ?? 0)) / (m.get(b)?.[i] ?? 1), 0);
      console.log(`  round ${i + 1}: ${row.join(", ")}`);
      console.log(
        `           text/none: -S ${r("text", "none", tps)} % of the tps, INSERT loop ${r("text", "none", ins)} % of the time`,
      );
    }
    for (const n of names) {
      console.log(
        `  ${n.padEnd(6)}: -S ${range(tps.get(n) ?? [], 0)} tps, INSERT loop ${range(ins.get(n) ?? [], 2)} s, ${range(cpu.get(n) ?? [], 0)} µs proxy CPU per INSERT`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
