import fc from "fast-check";
import { scanSync } from "libpg-query";
import { beforeAll, describe, expect, it } from "vitest";
import { classifyPostgres, loadPostgresGrammar } from "../../sidecar/proxy/postgres/statement-kind.js";
import {
  type LiteralSpan,
  MAX_SHAPED_CHARS,
  pgStatementShape,
} from "../../sidecar/proxy/postgres/statement-shape.js";

/** Pieces of PostgreSQL text, many of them lexically tricky, to be strung together at random. */
const piece = fc.oneof(
  fc.constantFrom(
    "SELECT",
    "select",
    "FROM",
    "WHERE",
    "INSERT INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE FROM",
    "DROP TABLE",
    "TABLE",
    "AS",
    "JOIN",
    "ON",
    "LIMIT",
    "UESCAPE",
    "payroll",
    "orders",
    "sales.orders",
    "t1",
    "x",
    "e",
    "E",
    "U",
    "u",
    "b",
    "X",
    "n",
    "date",
    "float",
    "set_config",
    "client_encoding",
    "standard_conforming_strings",
    "é",
    "\u00a0",
  ),
  fc.constantFrom(
    " ",
    "  ",
    "\n",
    "\t",
    "\r\n",
    ",",
    ";",
    "(",
    ")",
    "=",
    "-",
    "+",
    "*",
    "/",
    ".",
    "..",
    ":",
    "::",
    "&",
    "'",
    '"',
    "$",
    "\\",
    "[",
    "]",
    "!",
    "#",
    "|",
    "%",
    "<>",
  ),
  fc.constantFrom(
    "'abc'",
    "''",
    "''''",
    "'it''s'",
    "'a--b'",
    "'a/*b'",
    "'$$'",
    "'\"'",
    "'\n'",
    "'é'",
    "E'x'",
    "e'\\''",
    "U&'d!0061'",
    "B'01'",
    "X'1F'",
    "N'x'",
    '"id"',
    '"a""b"',
    '"$x"',
    '"\'"',
    'U&"p!0061yroll"',
    "$$x$$",
    "$a$x$a$",
    "$1",
    "-- c\n",
    "/* c */",
    "/* /* */ */",
    "0",
    "5",
    "007",
    "123456789",
    "1234567890",
    "99999999999",
    "1.5",
    ".5",
    "5.",
    "1e5",
    "1E-3",
    "0x1F",
    "0b101",
    "0o17",
    "1_000",
    "1..2",
  ),
  fc.string({ maxLength: 3 }),
);

const soup = fc.array(piece, { maxLength: 14 }).map((ps) => ps.join(""));

/** Statements that parse, with literal slots (`#s` a string, `#i` an integer) filled at random. */
const TEMPLATES = [
  "SELECT abalance FROM pgbench_accounts WHERE aid = #i;",
  "SELECT * FROM orders WHERE id = #i AND name = #s",
  "select total from sales.orders where id in (#i, #i, #i) and note <> #s limit #i",
  "INSERT INTO orders (id, name) VALUES (#i, #s), (-#i, #s)",
  "UPDATE orders SET name = #s WHERE id = #i RETURNING *",
  "DELETE FROM orders WHERE id = #i",
  "SELECT #s\n#s FROM orders",
  "SELECT #s::date, date #s, interval #s day FROM t1",
  "SELECT 1::float(#i), x[#i:#i] FROM orders",
  'SELECT "a""b", "é" FROM "Orders" WHERE "id" = #i',
  "SET client_encoding = #s",
  "SET NAMES #s",
  "SET standard_conforming_strings = #s",
  "SELECT set_config(#s, #s, false)",
  "SELECT pg_catalog.set_config(#s, #s, false) FROM orders",
  "SELECT * FROM orders; SET client_encoding TO #s",
  "DO #s",
  "CREATE TABLE t_#i (id int DEFAULT #i, n text DEFAULT #s)",
  "DROP TABLE orders, customers",
  "COPY orders TO PROGRAM #s",
  "EXPLAIN SELECT * FROM orders WHERE id = #i",
  "WITH d AS (DELETE FROM orders WHERE id = #i RETURNING id) SELECT * FROM customers",
  'SELECT * FROM U&"p!0061yroll" UESCAPE #s',
  "SELECT E#s, #s FROM orders",
  "FETCH #i FROM c",
  "SELECT #i#s",
];

/** Content of a plain string constant (no quote unless doubled, no backslash, no mark). */
const stringContent = fc.string({ unit: "grapheme", maxLength: 12 }).map((s) =>
  [...s]
    .filter((c) => c !== "\\" && c !== "\u0000" && c !== "\u0001")
    .join("")
    .replace(/'/g, "''"),
);
const stringLiteral = stringContent.map((c) => `'${c}'`);
/** 1 to 9 digits, leading zeros too. */
const integerLiteral = fc
  .tuple(
    fc.nat({ max: 2 }),
    fc.oneof(fc.integer({ min: 0, max: 9_999_999 }), fc.constantFrom(0, 5, 2_147_483)),
  )
  .map(([zeros, n]) => "0".repeat(zeros) + String(n));

const templated = fc
  .tuple(
    fc.constantFrom(...TEMPLATES),
    fc.array(fc.tuple(stringLiteral, integerLiteral), { minLength: 8, maxLength: 8 }),
  )
  .map(([t, fills]) => {
    let k = 0;
    return t.replace(/#[si]/g, (slot) => {
      const [s, i] = fills[k++ % fills.length] as [string, string];
      return slot === "#s" ? s : i;
    });
  });

/** Errors PostgreSQL's grammar raises on a constant's value, not on the text's structure. */
const VALUE_CHECKS = /^precision for type float must be (at least 1 bit|less than 54 bits)/;

/** The same text with each masked literal replaced by another of its kind. */
function refilled(
  sql: string,
  spans: readonly LiteralSpan[],
  fills: ReadonlyArray<[string, string]>,
): string {
  let out = "";
  let from = 0;
  spans.forEach((s, k) => {
    const [str, int] = fills[k % fills.length] as [string, string];
    out += sql.slice(from, s.start) + (s.kind === "string" ? str : int);
    from = s.end;
  });
  return out + sql.slice(from);
}

function spansOf(sql: string): { shape: string | undefined; spans: LiteralSpan[] } {
  const spans: LiteralSpan[] = [];
  return { shape: pgStatementShape(sql, spans), spans };
}

beforeAll(async () => {
  await loadPostgresGrammar();
});

describe("pgStatementShape", () => {
  it("masks plain strings and short integers, keeps everything else as written", () => {
    expect(pgStatementShape("SELECT abalance FROM pgbench_accounts WHERE aid = 81234;")).toBe(
      "SELECT abalance FROM pgbench_accounts WHERE aid = \u0001i;",
    );
    expect(pgStatementShape("SELECT 'it''s', t1.a, 1.5, 1e5, 0x1F, 1234567890 FROM t1")).toBe(
      "SELECT \u0001s, t1.a, 1.5, 1e5, 0x1F, 1234567890 FROM t1",
    );
    expect(pgStatementShape('SELECT "a\'b" FROM "x""y"')).toBe('SELECT "a\'b" FROM "x""y"');
  });

  it("gives up on what it does not read itself", () => {
    for (const sql of [
      "SELECT E'x'",
      "SELECT e'x'",
      "SELECT U&'d!0061' UESCAPE '!'",
      "SELECT * FROM U&\"p!0061yroll\" UESCAPE '!'",
      "SELECT B'01', 1",
      "SELECT X'1F'",
      "SELECT N'x'",
      "SELECT date'2020-01-01'",
      "SELECT $$x$$",
      "SELECT $1",
      "SELECT a$b FROM t",
      "SELECT 1 -- c",
      "SELECT /* c */ 1",
      "SELECT 'a\\'",
      "SELECT 1 \\g",
      "SELECT 'abc",
      'SELECT "abc',
      "SELECT '\u0001'",
      `SELECT '${"x".repeat(MAX_SHAPED_CHARS)}'`,
    ]) {
      expect(pgStatementShape(sql), sql).toBeUndefined();
    }
  });

  it("masks only what PostgreSQL's own lexer reads as one plain string or integer constant", () => {
    fc.assert(
      fc.property(fc.oneof(soup, templated), (sql) => {
        const { shape, spans } = spansOf(sql);
        if (shape === undefined) return;
        let tokens: ReturnType<typeof scanSync>["tokens"];
        try {
          tokens = scanSync(sql).tokens;
        } catch {
          // The server's lexer refuses it: it is never classified, so never kept.
          return;
        }
        // The lexer counts UTF-8 bytes.
        const bytes = (i: number) => Buffer.byteLength(sql.slice(0, i), "utf8");
        const byteSpans = spans.map((s) => ({ ...s, start: bytes(s.start), end: bytes(s.end) }));
        const text = Buffer.from(sql, "utf8");
        for (const s of byteSpans) {
          if (s.kind === "integer") {
            const t = tokens.find((x) => x.start === s.start);
            expect(t?.tokenName, sql).toBe("ICONST");
            expect(t?.end, sql).toBe(s.end);
          } else {
            // Strings on separate lines are one constant to the lexer ('a'\n'b'): within one.
            const t = tokens.find((x) => x.start <= s.start && x.end >= s.end);
            expect(t?.tokenName, sql).toBe("SCONST");
            expect(text[t?.start ?? -1], sql).toBe(0x27);
          }
        }
        // Every other token lies outside the masked spans.
        for (const t of tokens) {
          if (t.tokenName === "SCONST" || t.tokenName === "ICONST") continue;
          for (const s of byteSpans) expect(t.end <= s.start || t.start >= s.end, sql).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("texts of one shape are classified alike by PostgreSQL's grammar, or the classification says it is not", () => {
    let kept = 0;
    fc.assert(
      fc.property(
        fc.oneof(soup, templated, templated),
        fc.array(fc.tuple(stringLiteral, integerLiteral), { minLength: 4, maxLength: 4 }),
        (sql, fills) => {
          const { shape, spans } = spansOf(sql);
          if (shape === undefined) return;
          const other = refilled(sql, spans, fills);
          expect(pgStatementShape(other), other).toBe(shape);
          const a = classifyPostgres(sql);
          const b = classifyPostgres(other);
          const keptA = a.ok && a.sameForAnyLiterals === true;
          const keptB = b.ok && b.sameForAnyLiterals === true;
          if (!keptA && !keptB) return;
          kept += 1;
          // The grammar's own check of a value (float(54)): the server's grammar refuses that
          // text too; any tree it could have is the kept one's but for the constants' values.
          const refusedValue = (c: typeof a) => !c.ok && VALUE_CHECKS.test(c.error);
          if (refusedValue(a) || refusedValue(b)) return;
          expect(b, `${sql}\n---\n${other}`).toEqual(a);
        },
      ),
      { numRuns: 4000 },
    );
    // The property held on enough texts the cache would keep to mean something.
    expect(kept).toBeGreaterThan(1000);
  });

  it("a setting's value is never taken from another text of its shape", () => {
    for (const [a, b] of [
      ["SET client_encoding = 'UTF8'", "SET client_encoding = 'SJIS'"],
      ["SET NAMES 'UTF8'", "SET NAMES 'SJIS'"],
      [
        "SELECT set_config('standard_conforming_strings', 'on', false)",
        "SELECT set_config('standard_conforming_strings', 'off', false)",
      ],
      ["SELECT set_config('x.y', 'on', false)", "SELECT set_config('client_encoding', 'SJIS', false)"],
    ] as const) {
      expect(pgStatementShape(a)).toBe(pgStatementShape(b));
      const ca = classifyPostgres(a);
      expect(ca.ok && ca.sameForAnyLiterals).toBe(false);
      const cb = classifyPostgres(b);
      expect(cb.ok && cb.changesSyntax).toBe(true);
    }
  });
});
