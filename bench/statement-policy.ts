/**
 * Cost of one statement decision under statement policy (issue 20: goal under 50 µs p50, parse +
 * Cedar, cached for repeated statements): `StatementPolicy.judge` on a text naming new tables
 * each time (PostgreSQL's grammar in WASM, the tree walk, one Cedar decision), on a new literal
 * over known tables (the parse; Cedar's decision for that kind and those tables is cached), and
 * on a repeated text (the session's text cache: one SHA-256). Floors: bare libpg-query
 * `parseSync` (+ one bare `statefulIsAuthorized` for new tables); one SHA-256 of the text.
 * The same for the MySQL listener's reading (`mysqlClassifier`: the listener's lexer, then
 * node-sql-parser's MariaDB grammar per statement, or, for a statement whose shape with its
 * literals masked the session has read and checked, that reading), its floor a bare
 * node-sql-parser `parse`. `--grammar mysql` (or `postgres`) runs one grammar only.
 *
 *   npx tsx bench/statement-policy.ts [--quick] [--grammar mysql|postgres]
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { preparsePolicySet, statefulIsAuthorized } from "@cedar-policy/cedar-wasm/nodejs";
import { parseSync } from "libpg-query";
import { loadPolicy } from "../sidecar/policy/index.js";
import { createRequire } from "node:module";
import type { Parser } from "node-sql-parser";
import { mysqlClassifier } from "../sidecar/proxy/mysql/statement-kind.js";
import { classifyPostgres, loadPostgresGrammar } from "../sidecar/proxy/postgres/statement-kind.js";
import { StatementPolicy } from "../sidecar/proxy/statement-policy.js";
import { percentile, printTable, quick, type Row, writeResults } from "./stats.js";

const POLICY = `@id("read-only-selects")
permit (principal, action == Action::"statement", resource == Resource::"orders-db")
when {
  context.intent == "read" &&
  context.statement_kind == "select" &&
  ["orders", "customers"].containsAll(context.tables)
};
@id("ddl-with-approval")
permit (principal, action == Action::"statement", resource == Resource::"orders-db")
when { context.intent == "write" && context.statement_kind == "ddl" && context.approved };
`;

/**
 * A short statement and a longer one (a join with a filter): `(i, t)` varies the literal with
 * `i` and, with `t`, a table's name (a new (kind, tables) for Cedar).
 */
const SHAPES = {
  short: (i: number, t = "") => `SELECT total FROM orders${t} WHERE id = ${i}`,
  join: (i: number, t = "") =>
    `SELECT o.id, o.total, c.name FROM orders${t} o JOIN customers c ON c.id = o.customer_id WHERE o.total > ${i} AND c.name LIKE 'A%' ORDER BY o.total DESC LIMIT 50`,
} as const;

/** p50 of `fn` over `n` calls, µs, timed one by one after a warm-up. */
function p50(n: number, fn: (i: number) => unknown): number {
  for (let i = 0; i < Math.min(2000, n); i++) fn(i + 1e6);
  const samples = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    fn(i);
    samples[i] = (performance.now() - t) * 1e3;
  }
  samples.sort((a, b) => a - b);
  return percentile(samples, 50);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "lh-bench-stmt-"));
  try {
    await writeFile(join(dir, "policy.cedar"), POLICY);
    const engine = await loadPolicy({ file: join(dir, "policy.cedar") });
    await loadPostgresGrammar();
    const now = Date.now();
    const options = {
      policy: engine,
      lease: {
        id: "lease_bench",
        resource: "orders-db",
        agent: "spiffe://example.org/agent/a",
        task: { id: "TICKET-1" },
        intent: { action: "read", tool: "psql" },
        account: "app_1",
        state: "active",
        issued_at: now,
        expires_at: now + 3_600_000,
        max_expires_at: now + 3_600_000,
      },
      resource: "orders-db",
      groups: [],
      unparseable: "deny",
      classify: classifyPostgres,
      // No cache resets in the middle of a run.
      maxCached: 1e9,
    } as const;
    const policy = new StatementPolicy(options);
    preparsePolicySet("bench-stmt-floor", { staticPolicies: POLICY });
    const floorRequest = {
      principal: { type: "Agent", id: "spiffe://example.org/agent/a" },
      action: { type: "Action", id: "statement" },
      resource: { type: "Resource", id: "orders-db" },
      context: {
        task_id: "TICKET-1",
        intent: "read",
        tool: "psql",
        ttl: 3600,
        hour_utc: 12,
        active_leases: 0,
        approved: false,
        dpop: false,
        caller: { attested: false, uid: -1, exe_sha256: "", cgroup: "" },
        statement_kind: "select",
        tables: ["orders"],
        multiple: false,
      },
      entities: [
        { uid: { type: "Agent", id: "spiffe://example.org/agent/a" }, attrs: {}, parents: [] },
        { uid: { type: "Resource", id: "orders-db" }, attrs: {}, parents: [] },
      ],
      preparsedPolicySetId: "bench-stmt-floor",
    };
    const mysqlPolicy = new StatementPolicy({
      ...options,
      // As a listener session reads: statements of a shape it has read and checked are not parsed again.
      classify: mysqlClassifier("mariadb", ""),
    });
    const { Parser: MariaParser } = createRequire(import.meta.url)("node-sql-parser/build/mariadb.js") as {
      Parser: new () => Parser;
    };
    const bareMysql = new MariaParser();
    const only = process.argv[process.argv.indexOf("--grammar") + 1];
    const grammars = [
      { grammar: "postgres", judge: policy, parse: (sql: string) => parseSync(sql) },
      {
        grammar: "mysql",
        judge: mysqlPolicy,
        parse: (sql: string) => bareMysql.parse(sql, { database: "mariadb" }),
      },
    ].filter((g) => !process.argv.includes("--grammar") || g.grammar === only);
    const n = quick ? 5000 : 50000;
    const rows: Row[] = [];
    const results: Record<string, unknown> = { quick, n };
    for (const { grammar, judge, parse } of grammars)
      for (const [shapeName, shape] of Object.entries(SHAPES)) {
        const name = `${grammar} ${shapeName}`;
        const parseUs = p50(n, (i) => parse(shape(i)));
        const cedarUs = p50(n, () => statefulIsAuthorized(floorRequest));
        const uncachedUs = p50(n, (i) => judge.judge(shape(1, `_${shapeName}_${i}`)));
        const shapeCachedUs = p50(n, (i) => judge.judge(shape(i + 2e6)));
        const text = shape(42);
        judge.judge(text);
        const cachedUs = p50(n, () => judge.judge(text));
        const digestUs = p50(n, () => createHash("sha256").update(text, "utf8").digest("base64"));
        rows.push(
          {
            figure: `${name}: new tables (parse+Cedar)`,
            product: uncachedUs,
            floor: parseUs + cedarUs,
            unit: "µs p50",
            better: "lower",
          },
          {
            figure: `${name}: new literal, known tables (parse)`,
            product: shapeCachedUs,
            floor: parseUs,
            unit: "µs p50",
            better: "lower",
            goal: "< 50",
          },
          {
            figure: `${name}: repeated text (cache)`,
            product: cachedUs,
            floor: digestUs,
            unit: "µs p50",
            better: "lower",
            goal: "< 50",
          },
        );
        results[name] = {
          chars: text.length,
          parseUs,
          cedarUs,
          uncachedUs,
          shapeCachedUs,
          cachedUs,
          digestUs,
        };
      }
    printTable(
      `Statement policy decision cost (${n} statements each; floors: bare parseSync (+ bare statefulIsAuthorized), one SHA-256)`,
      rows,
    );
    process.stdout.write(`results: ${writeResults("statement-policy", results)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

void main();
