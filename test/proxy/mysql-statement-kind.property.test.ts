import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { classifyMysql, type MysqlDialect } from "../../sidecar/proxy/mysql/statement-kind.js";
import type { StatementKind } from "../../sidecar/proxy/statement-policy.js";

/** A statement from the grammar below, with what it must be classified as. */
interface Generated {
  readonly sql: string;
  readonly kind: StatementKind;
  readonly tables: readonly string[];
}

const table = fc.constantFrom("orders", "customers", "payroll", "sales.orders", "audit.log");
const column = fc.constantFrom("id", "total", "name");

const g = (sql: string, kind: StatementKind, ...tables: string[]): Generated => ({
  sql,
  kind,
  tables: [...new Set(tables)],
});

/** Text as a MySQL string literal: quotes doubled or backslash-escaped, backslashes escaped. */
const literal = fc
  .string({ unit: fc.constantFrom("a", ";", "'", '"', "\\", "-", "#", "/", "*", " ", "\n", "!", "é") })
  .chain((s) =>
    fc.boolean().map((doubled) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, doubled ? "''" : "\\'")}'`),
  );

/** A small MySQL grammar: each kind in a few shapes, tables from a fixed set (some database-qualified). */
const statement: fc.Arbitrary<Generated> = fc.oneof(
  fc.tuple(column, table).map(([c, t]) => g(`SELECT ${c} FROM ${t} WHERE ${c} IS NOT NULL`, "select", t)),
  fc
    .tuple(table, table)
    .map(([a, b]) => g(`SELECT * FROM ${a} x JOIN ${b} y ON x.id = y.id`, "select", a, b)),
  fc.tuple(table, literal).map(([t, l]) => g(`SELECT id FROM ${t} WHERE name = ${l}`, "select", t)),
  fc
    .tuple(table, table)
    .map(([a, b]) => g(`SELECT * FROM ${a} WHERE id IN (SELECT id FROM ${b})`, "select", a, b)),
  fc.tuple(table, column).map(([t, c]) => g(`INSERT INTO ${t} (${c}) VALUES (1)`, "insert", t)),
  fc.tuple(table, table).map(([a, b]) => g(`INSERT INTO ${a} SELECT * FROM ${b}`, "insert", a, b)),
  fc
    .tuple(table, column)
    .map(([t, c]) => g(`INSERT INTO ${t} (${c}) VALUES (1) ON DUPLICATE KEY UPDATE ${c} = 2`, "update", t)),
  table.map((t) => g(`REPLACE INTO ${t} VALUES (1)`, "update", t)),
  fc.tuple(table, column).map(([t, c]) => g(`UPDATE ${t} SET ${c} = 0 WHERE id = 1`, "update", t)),
  table.map((t) => g(`DELETE FROM ${t} WHERE id = 1`, "delete", t)),
  table.map((t) => g(`DROP TABLE ${t}`, "ddl", t)),
  table.map((t) => g(`TRUNCATE TABLE ${t}`, "ddl", t)),
  fc.tuple(table, column).map(([t, c]) => g(`ALTER TABLE ${t} ADD COLUMN ${c}_x INT`, "ddl", t)),
  table.map((t) => g(`CREATE TABLE ${t} (id INT)`, "ddl", t)),
  fc.constantFrom(
    g("CREATE USER someone", "dcl"),
    g("GRANT SELECT ON *.* TO someone", "dcl"),
    g("SET PASSWORD = 'x'", "dcl"),
  ),
  table.map((t) => g(`LOAD DATA INFILE '/tmp/x' INTO TABLE ${t}`, "copy", t)),
  table.map((t) => g(`LOAD DATA LOCAL INFILE '/tmp/x' INTO TABLE ${t}`, "copy", t)),
  table.map((t) => g(`SELECT * FROM ${t} INTO OUTFILE '/tmp/x'`, "copy", t)),
  table.map((t) => g(`SELECT * FROM ${t} INTO DUMPFILE '/tmp/x'`, "copy", t)),
  fc.constantFrom(g("CALL purge(1)", "call"), g("DO SLEEP(0)", "do")),
  fc.constantFrom(
    g("BEGIN", "transaction"),
    g("START TRANSACTION", "transaction"),
    g("COMMIT", "transaction"),
    g("ROLLBACK", "transaction"),
    g("SAVEPOINT s1", "transaction"),
    g("ROLLBACK TO SAVEPOINT s1", "transaction"),
  ),
  fc.constantFrom(
    g("SET @x = 1", "set"),
    g("SET autocommit = 0", "set"),
    g("USE shop", "set"),
    g("SHOW TABLES", "other"),
  ),
  table.map((t) => g(`EXPLAIN DELETE FROM ${t}`, "delete", t)),
  table.map((t) => g(`PREPARE p FROM 'DELETE FROM ${t}'`, "delete", t)),
  fc.constantFrom(g("EXECUTE p", "other"), g("DEALLOCATE PREPARE p", "other"), g("KILL QUERY 7", "other")),
);

/** Whitespace and comments the server skips, between statements and before them. */
const filler = fc.constantFrom(" ", "\n", "\t", " /* note; 'x' */ ", " -- note; 'x'\n", ' # note; "x"\n');

describe.each(["mariadb", "mysql"] as MysqlDialect[])(
  "statement classification (%s grammar), property-based",
  (dialect) => {
    it("classifies each generated statement's kind and tables", () => {
      fc.assert(
        fc.property(statement, filler, (s, pad) => {
          const sql = `${pad}${s.sql}${pad}`;
          const c = classifyMysql(sql, dialect);
          expect(c.ok, sql).toBe(true);
          if (!c.ok) return;
          expect(c.statements, sql).toHaveLength(1);
          expect(c.statements[0]?.kind, sql).toBe(s.kind);
          expect([...(c.statements[0]?.tables ?? [])].sort(), sql).toEqual([...s.tables].sort());
        }),
        { numRuns: 400 },
      );
    });

    it("a message of several statements has each one, whatever its literals and comments hold", () => {
      fc.assert(
        fc.property(fc.array(fc.tuple(statement, filler), { minLength: 1, maxLength: 4 }), (parts) => {
          const sql = parts.map(([p, pad]) => `${p.sql}${pad}`).join(";");
          const c = classifyMysql(sql, dialect);
          expect(c.ok, sql).toBe(true);
          if (!c.ok) return;
          expect(
            c.statements.map((s) => s.kind),
            sql,
          ).toEqual(parts.map(([p]) => p.kind));
        }),
        { numRuns: 300 },
      );
    });

    it("an executable comment or `--` without a space anywhere outside a literal is refused as misread", () => {
      fc.assert(
        fc.property(
          statement,
          fc.constantFrom("/*! DROP TABLE t */", "/*!50000 1 */", "/*M! 1 */", "--1", "--x"),
          (s, bad) => {
            const sql = `${s.sql} ${bad}`;
            const c = classifyMysql(sql, dialect);
            expect(c.ok, sql).toBe(false);
            if (!c.ok) expect(c.misread, sql).toBeDefined();
          },
        ),
        { numRuns: 200 },
      );
    });
  },
);
