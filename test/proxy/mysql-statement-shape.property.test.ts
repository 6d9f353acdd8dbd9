import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Classification } from "../../sidecar/proxy/statement-policy.js";
import {
  classifyMysql,
  type MysqlDialect,
  mysqlClassifier,
} from "../../sidecar/proxy/mysql/statement-kind.js";
import { statementShape } from "../../sidecar/proxy/mysql/statement-shape.js";

/** Statements with holes (`?`), where literals, names and whatever else go. */
const TEMPLATES = [
  "SELECT total FROM orders WHERE id = ?",
  "SELECT ? AS n",
  "SELECT ?, ? FROM orders",
  "SELECT * FROM ?",
  "SELECT * FROM orders ?",
  "SELECT * FROM orders AS ?",
  "SELECT ? ? FROM orders",
  "SELECT * FROM orders WHERE name = ??",
  "SELECT * FROM orders WHERE id IN (?, ?) AND name LIKE ?",
  "SELECT * FROM orders WHERE total > ? ORDER BY total DESC LIMIT ?",
  "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > ? AND c.name = ?",
  "SELECT * FROM orders WHERE id = (SELECT id FROM ? WHERE a = ?)",
  "SELECT * FROM orders WHERE id =?",
  "SELECT * FROM orders WHERE a=?AND b=?",
  "SELECT * FROM orders WHERE a = -?",
  "SELECT * FROM orders WHERE a = 1-?",
  "SELECT ?.id FROM orders",
  "SELECT * FROM orders INTO OUTFILE ?",
  "INSERT INTO orders VALUES (?, ?)",
  "INSERT INTO orders (id, name) VALUES (?, ?) ON DUPLICATE KEY UPDATE name = ?",
  "INSERT INTO ? VALUES (?)",
  "REPLACE INTO orders VALUES (?)",
  "UPDATE orders SET name = ? WHERE id = ?",
  "DELETE FROM orders WHERE id = ?",
  "SET @x = ?",
  "SET NAMES ?",
  "PREPARE p FROM ?",
  "EXECUTE IMMEDIATE ?",
  "DO ?",
  "SELECT ?; DELETE FROM orders WHERE id = ?",
  "SELECT * FROM orders WHERE a = ? -- c\n",
];

/** Content for a quoted literal: quotes, escapes, comment marks, keywords, names and non-ASCII among them. */
const content = fc
  .array(
    fc.constantFrom(
      "a",
      "Z",
      "0",
      " ",
      "%",
      "_",
      "?",
      "é",
      "\u00a0",
      "'",
      "''",
      '"',
      '""',
      "\\'",
      '\\"',
      "\\\\",
      "\\",
      "\\n",
      "`",
      ";",
      "--",
      "-- ",
      "#",
      "/*",
      "*/",
      "/*!",
      "\n",
      "\t",
      "\0",
      "FROM customers",
      "t2",
      "orders",
      "lhprobe",
    ),
    { maxLength: 6 },
  )
  .map((parts) => parts.join(""));

/** What goes in a hole: literals of each kind (some unterminated, some merged), names, numbers. */
const filling = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom("'", '"'), content).map(([q, c]) => `${q}${c}${q}`) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom("x", "X", "b", "B", "N", "n", "_utf8", "_utf8 ", "_binary", "@", "."), content)
      .map(([p, c]) => `${p}'${c}'`),
  },
  { weight: 3, arbitrary: fc.nat().map(String) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "0",
      "007",
      "-5",
      "1e5",
      "1E5",
      "1e-5",
      "1.5",
      ".5",
      "5.",
      "0x1F",
      "0b101",
      "12345678901234567890",
      "123456789012345",
      "1abc",
      "9t",
      "NULL",
      "TRUE",
    ),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom("t2", "customers", "`t 2`", "`a``b`", "db.t2", "orders o", "payroll"),
  },
  { weight: 1, arbitrary: fc.constantFrom("'a' 'b'", "'a''b'", "'a'\"b\"", "(1)", "1, 2", "?") },
);

/** Mostly plain content (names of tables among it), now and then a character no plain literal has. */
const plainish = fc
  .array(
    fc.oneof(
      {
        weight: 12,
        arbitrary: fc.constantFrom("a", "t2", "payroll", "orders", " ", "%", "_", "é", "FROM customers", "0"),
      },
      { weight: 1, arbitrary: fc.constantFrom("'", '"', "\\", "'", "\n", "`", "\n", "\0", ";", "#", "-- ") },
    ),
    { maxLength: 4 },
  )
  .map((parts) => parts.join(""));

/** One hole's two fillings: the same prefix and kind, each its own content (so most pairs share a shape). */
const pairedSlot = fc
  .tuple(
    fc.oneof(
      { weight: 8, arbitrary: fc.constant("") },
      {
        weight: 3,
        arbitrary: fc.constantFrom(
          "x",
          "b",
          "N",
          "_utf8",
          "_utf8 ",
          "_binary ",
          "@",
          "-",
          ".",
          "a",
          "=",
          "(",
        ),
      },
    ),
    fc.constantFrom("'", '"', "n", "n"),
    fc.oneof(
      { weight: 8, arbitrary: fc.constant("") },
      { weight: 2, arbitrary: fc.constantFrom("e5", ".5", "e-5", "abc", "'", " 'c'", ".t") },
    ),
    plainish,
    plainish,
    fc.stringMatching(/^[0-9]{1,18}$/),
    fc.stringMatching(/^[0-9]{1,18}$/),
  )
  .map(([prefix, kind, suffix, a, b, m, n]) =>
    kind === "n"
      ? ([`${prefix}${m}${suffix}`, `${prefix}${n}${suffix}`] as const)
      : ([`${prefix}${kind}${a}${kind}`, `${prefix}${kind}${b}${kind}`] as const),
  );

/** A template with its holes filled. */
function fill(template: string, values: readonly string[]): string {
  let k = 0;
  return template.replace(/\?/g, () => values[k++ % Math.max(1, values.length)] ?? "");
}

const dialects: MysqlDialect[] = ["mariadb", "mysql"];

/** What a classification says of the statements, without whether it holds for any literals. */
function reading(c: Classification): Omit<Classification, "sameForAnyLiterals"> {
  if (!c.ok) return c;
  const { sameForAnyLiterals: _, ...rest } = c;
  return rest;
}
const sqlModes = ["", "STRICT_TRANS_TABLES", "ANSI_QUOTES", "NO_BACKSLASH_ESCAPES"];

describe("statement shapes (statement-shape.ts), property-based", () => {
  it("a session's classifier, shape memory and all, reads every statement as the full parse does", () => {
    let recalled = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(...TEMPLATES),
        fc.constantFrom(...dialects),
        fc.constantFrom(...sqlModes),
        fc.array(fc.array(filling, { minLength: 1, maxLength: 4 }), { minLength: 3, maxLength: 8 }),
        (template, dialect, sqlMode, fillings) => {
          const classify = mysqlClassifier(dialect, sqlMode, () => {
            recalled++;
          });
          // Each filling twice: the second sighting of a shape is what makes it known.
          for (const values of [...fillings, ...fillings]) {
            const sql = fill(template, values);
            expect(reading(classify(sql)), sql).toEqual(reading(classifyMysql(sql, dialect)));
          }
        },
      ),
      { numRuns: 600 },
    );
    // The memory was used, not only filled.
    expect(recalled).toBeGreaterThan(100);
  });

  it("two texts of one shape read alike: after one is known, the other is read as its full parse", () => {
    let recalled = 0;
    let anyLiterals = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(...TEMPLATES),
        fc.array(pairedSlot, { minLength: 1, maxLength: 4 }),
        (template, slots) => {
          const first = fill(
            template,
            slots.map(([a]) => a),
          );
          const second = fill(
            template,
            slots.map(([, b]) => b),
          );
          const classify = mysqlClassifier("mariadb", "", () => {
            recalled++;
          });
          classify(first);
          classify(first);
          const known = classify(first);
          const full = classifyMysql(second, "mariadb");
          expect(reading(classify(second)), `${first} / ${second}`).toEqual(reading(full));
          // What statement policy relies on to keep a verdict per shape (`sameForAnyLiterals`):
          // any text of that shape reads as this one.
          if (
            known.ok &&
            known.sameForAnyLiterals &&
            statementShape(second, "")?.key === statementShape(first, "")?.key
          ) {
            anyLiterals++;
            expect(reading(full), `${first} / ${second}`).toEqual(reading(known));
          }
        },
      ),
      { numRuns: 2000 },
    );
    // Most pairs share a shape: the second text was read from memory, and still read right.
    expect(recalled).toBeGreaterThan(300);
    expect(anyLiterals).toBeGreaterThan(300);
  });

  it("statements of a plain shape are read from memory after the shape was seen twice", () => {
    let recalled = 0;
    let anyLiterals = 0;
    const classify = mysqlClassifier("mariadb", "", () => {
      recalled++;
    });
    fc.assert(
      fc.property(fc.nat(), fc.stringMatching(/^[a-zA-Z0-9 %]{0,12}$/), (n, s) => {
        const sql = `SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > ${n} AND c.name LIKE '${s}'`;
        const c = classify(sql);
        expect(reading(c)).toEqual(reading(classifyMysql(sql, "mariadb")));
        if (c.ok && c.sameForAnyLiterals) anyLiterals++;
      }),
      { numRuns: 200 },
    );
    expect(recalled).toBeGreaterThanOrEqual(198);
    expect(anyLiterals).toBe(recalled);
  });
});

describe("statementShape: the server's lexical rules", () => {
  const key = (text: string, sqlMode = "") => statementShape(text, sqlMode)?.key;

  it("masks plain strings of both quotes and standalone digit runs", () => {
    expect(key("SELECT a FROM t WHERE b = 'x y' AND c = \"z\" LIMIT 10")).toBe(
      "SELECT a FROM t WHERE b = \0' AND c = \0\" LIMIT \0n",
    );
    expect(key("SELECT 1")).toBe(key("SELECT 2"));
    expect(key("SELECT 'a'")).not.toBe(key('SELECT "a"'));
  });

  it("leaves hex, bit, introduced and national strings and non-integer numbers as they are", () => {
    for (const text of [
      "SELECT x'1F'",
      "SELECT X'1F'",
      "SELECT b'01'",
      "SELECT B'01'",
      "SELECT N'a'",
      "SELECT _utf8mb4'a'",
      "SELECT _binary'a'",
      "SELECT 0x1F",
      "SELECT 0b01",
      "SELECT 1e5",
      "SELECT 1e-5",
      "SELECT 1.5",
      "SELECT .5",
      "SELECT t.1",
      "SELECT 1abc",
      "SELECT @1",
      "SELECT 1234567890123456",
    ]) {
      expect(statementShape(text, "")?.kinds, text).toEqual([]);
    }
  });

  it("leaves strings with an escape, a quote or a control character as they are", () => {
    for (const text of [
      "SELECT 'a\\'b'",
      "SELECT 'a''b'",
      "SELECT 'a\"b'",
      'SELECT "a\'b"',
      "SELECT 'a\nb'",
    ]) {
      expect(statementShape(text, "")?.kinds, text).toEqual([]);
    }
  });

  it('takes `"…"` for a name under ANSI_QUOTES', () => {
    expect(statementShape('SELECT "a" FROM t', "STRICT_TRANS_TABLES,ANSI_QUOTES")?.kinds).toEqual([]);
    expect(statementShape("SELECT 'a' FROM t", "ANSI_QUOTES")?.kinds).toEqual(["'"]);
  });

  it("has no shape for comments, `;`, NUL, an unclosed quote, or a backslash under NO_BACKSLASH_ESCAPES", () => {
    for (const text of [
      "SELECT 1 # c",
      "SELECT 1 -- c",
      "SELECT 1 --1",
      "SELECT 1 /* c */",
      "SELECT /*! 1 */",
      "SELECT /*M! 1 */",
      "SELECT 1; SELECT 2",
      "SELECT '1",
      "SELECT `1",
      "SELECT 1\0",
    ]) {
      expect(statementShape(text, ""), text).toBeUndefined();
    }
    expect(statementShape("SELECT 'a\\'", "NO_BACKSLASH_ESCAPES")).toBeUndefined();
    expect(statementShape("SELECT '#', '--', '/*!'", "")?.kinds).toEqual(["'", "'", "'"]);
  });
});
