import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPolicy, type PolicyEngine } from "../../sidecar/policy/index.js";
import { classifyPostgres, loadPostgresGrammar } from "../../sidecar/proxy/postgres/statement-kind.js";
import { type StatementKind, StatementPolicy } from "../../sidecar/proxy/statement-policy.js";

/** A statement from the grammar below, with what it must be classified as. */
interface Generated {
  readonly sql: string;
  readonly kind: StatementKind;
  readonly tables: readonly string[];
}

const table = fc.constantFrom("orders", "customers", "payroll", "sales.orders", "audit.log");
const column = fc.constantFrom("id", "total", "name");
const role = fc.constantFrom("reporting", "public");

const g = (sql: string, kind: StatementKind, ...tables: string[]): Generated => ({
  sql,
  kind,
  tables: [...new Set(tables)],
});

/** A small SQL grammar: each kind in a few shapes, tables from a fixed set (some schema-qualified). */
const statement: fc.Arbitrary<Generated> = fc.oneof(
  fc.tuple(column, table).map(([c, t]) => g(`SELECT ${c} FROM ${t} WHERE ${c} IS NOT NULL`, "select", t)),
  fc
    .tuple(table, table)
    .map(([a, b]) => g(`SELECT * FROM ${a} x JOIN ${b} y ON x.id = y.id`, "select", a, b)),
  fc.tuple(table, column).map(([t, c]) => g(`INSERT INTO ${t} (${c}) VALUES (1)`, "insert", t)),
  fc.tuple(table, table).map(([a, b]) => g(`INSERT INTO ${a} SELECT * FROM ${b}`, "insert", a, b)),
  fc.tuple(table, column).map(([t, c]) => g(`UPDATE ${t} SET ${c} = 0 WHERE id = 1`, "update", t)),
  table.map((t) => g(`DELETE FROM ${t} WHERE id = 1`, "delete", t)),
  fc
    .tuple(table, table)
    .map(([a, b]) => g(`WITH d AS (DELETE FROM ${a} RETURNING id) SELECT * FROM ${b}`, "delete", b, a)),
  table.map((t) => g(`DROP TABLE ${t}`, "ddl", t)),
  table.map((t) => g(`TRUNCATE ${t}`, "ddl", t)),
  fc.tuple(table, column).map(([t, c]) => g(`ALTER TABLE ${t} ADD COLUMN ${c}_x int`, "ddl", t)),
  table.map((t) => g(`CREATE TABLE ${t} (id int)`, "ddl", t)),
  fc.tuple(table, table).map(([a, b]) => g(`SELECT * INTO ${a} FROM ${b}`, "ddl", a, b)),
  fc.tuple(table, role).map(([t, r]) => g(`GRANT SELECT ON ${t} TO ${r}`, "dcl", t)),
  role.map((r) => g(`ALTER ROLE ${r === "public" ? "someone" : r} NOLOGIN`, "dcl")),
  table.map((t) => g(`COPY ${t} TO STDOUT`, "copy", t)),
  table.map((t) => g(`COPY ${t} TO PROGRAM 'cat'`, "copy", t)),
  fc.constantFrom(g("CALL purge(1)", "call"), g("DO $$BEGIN NULL; END$$", "do")),
  fc.constantFrom(g("BEGIN", "transaction"), g("COMMIT", "transaction"), g("ROLLBACK", "transaction")),
  fc.constantFrom(g("SET search_path = x", "set"), g("RESET ALL", "set"), g("SHOW work_mem", "other")),
  table.map((t) => g(`EXPLAIN ANALYZE DELETE FROM ${t}`, "delete", t)),
);

const SELECT_ONLY = `@id("select-only")
permit (principal, action == Action::"statement", resource)
when { context.statement_kind == "select" };
`;

let dir: string;
let engine: PolicyEngine;

beforeAll(async () => {
  await loadPostgresGrammar();
  dir = await mkdtemp(join(tmpdir(), "lh-stmt-prop-"));
  await writeFile(join(dir, "policy.cedar"), SELECT_ONLY);
  engine = await loadPolicy({ file: join(dir, "policy.cedar") });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function policy(): StatementPolicy {
  return new StatementPolicy({
    policy: engine,
    lease: {
      id: "lease_p",
      resource: "db",
      agent: "spiffe://example.org/agent/a",
      task: { id: "T" },
      intent: { action: "read" },
      account: "a",
      state: "active",
      issued_at: 0,
      expires_at: Date.now() + 60_000,
      max_expires_at: Date.now() + 60_000,
    },
    resource: "db",
    groups: [],
    unparseable: "deny",
    classify: classifyPostgres,
  });
}

describe("statement classification (PostgreSQL's grammar), property-based", () => {
  it("classifies each generated statement's kind and tables", () => {
    fc.assert(
      fc.property(statement, (s) => {
        const c = classifyPostgres(s.sql);
        expect(c.ok, s.sql).toBe(true);
        if (!c.ok) return;
        expect(c.statements, s.sql).toHaveLength(1);
        expect(c.statements[0]?.kind, s.sql).toBe(s.kind);
        expect([...(c.statements[0]?.tables ?? [])].sort(), s.sql).toEqual([...s.tables].sort());
      }),
      { numRuns: 400 },
    );
  });

  it("a select-only policy allows a message exactly when every statement in it is a select", () => {
    fc.assert(
      fc.property(fc.array(statement, { minLength: 1, maxLength: 3 }), (parts) => {
        const sql = parts.map((p) => p.sql).join("; ");
        const c = classifyPostgres(sql);
        expect(c.ok && c.statements.length, sql).toBe(parts.length);
        expect(policy().judge(sql).allowed, sql).toBe(parts.every((p) => p.kind === "select"));
      }),
      { numRuns: 300 },
    );
  });
});
