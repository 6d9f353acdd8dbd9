import { createRequire } from "node:module";
import type { AST, Parser } from "node-sql-parser";
import type { Classification, ClassifiedStatement, StatementKind } from "../statement-policy.js";
import { type ScannedStatement, scanMysql, unquoteMysql } from "./sql-scan.js";
import { probeLiteralsRead, probeText, type StatementShape, shapeReader } from "./statement-shape.js";

/** Which grammar of node-sql-parser reads the server's SQL. */
export type MysqlDialect = "mysql" | "mariadb";

const require = createRequire(import.meta.url);
const parsers = new Map<MysqlDialect, Parser>();

/** The dialect's parser (loaded once per process, on first use). */
function parserFor(dialect: MysqlDialect): Parser {
  let p = parsers.get(dialect);
  if (!p) {
    const mod = require(`node-sql-parser/build/${dialect}.js`) as { Parser: new () => Parser };
    p = new mod.Parser();
    parsers.set(dialect, p);
  }
  return p;
}

/** The grammar for a server, by the version string of its greeting. */
export function dialectOf(serverVersion: string): MysqlDialect {
  return /mariadb/i.test(serverVersion) ? "mariadb" : "mysql";
}

/** One statement's reading: its classification, or why it cannot be read. */
type One =
  | { readonly ok: true; readonly statement: ClassifiedStatement; readonly syntax: boolean }
  | { readonly ok: false; readonly error: string; readonly misread?: string | undefined };

type Node = Record<string, unknown>;

/** Settings that change how the server reads later SQL: never set under statement policy. */
const SYNTAX_SETTINGS = new Set(["sql_mode", "character_set_client"]);

const FIXED: Readonly<Record<string, StatementKind>> = {
  update: "update",
  // REPLACE deletes the rows it conflicts with: it is not a mere insert.
  replace: "update",
  delete: "delete",
  load_data: "copy",
  call: "call",
  transaction: "transaction",
  use: "set",
  show: "other",
  desc: "other",
  lock: "other",
  unlock: "other",
  grant: "dcl",
  revoke: "dcl",
};

/** Anything in the tree that writes a file on the server (`INTO OUTFILE`, `INTO DUMPFILE`). */
function writesFile(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  if (Array.isArray(value)) return value.some(writesFile);
  const node = value as Node;
  if (node.type === "into" && /^(outfile|dumpfile)$/i.test(String(node.keyword))) return true;
  for (const key in node) if (writesFile(node[key])) return true;
  return false;
}

/** What a SET does: `dcl` for a password, a syntax change for sql_mode or the client's character set. */
function setKind(ast: Node): { kind: StatementKind; syntax: boolean } {
  let kind: StatementKind = "set";
  let syntax = false;
  for (const e of (ast.expr as Node[] | undefined) ?? []) {
    const left = e.left as { name?: unknown; members?: unknown[]; prefix?: unknown } | undefined;
    if (!left || left.prefix === "@") continue;
    const members = left.members ?? [];
    const name = String(members.length > 0 ? members.at(-1) : left.name).toLowerCase();
    if (name === "password") kind = "dcl";
    if (SYNTAX_SETTINGS.has(name)) syntax = true;
  }
  return { kind, syntax };
}

function kindOf(ast: Node): { kind: StatementKind; syntax: boolean } {
  const type = String(ast.type);
  const keyword = String(ast.keyword ?? "").toLowerCase();
  if (type === "select") return { kind: writesFile(ast) ? "copy" : "select", syntax: false };
  if (type === "insert") return { kind: ast.on_duplicate_update ? "update" : "insert", syntax: false };
  if (type === "set") return setKind(ast);
  if (type === "explain" && typeof ast.expr === "object" && ast.expr !== null) {
    return kindOf((ast.expr as Node).ast ? ((ast.expr as Node).ast as Node) : (ast.expr as Node));
  }
  const fixed = FIXED[type];
  if (fixed) return { kind: fixed, syntax: false };
  if ((type === "create" || type === "drop" || type === "alter") && /^(user|role)$/.test(keyword))
    return { kind: "dcl", syntax: false };
  // create, drop, alter, truncate, rename, and whatever else the grammar knows.
  return { kind: "ddl", syntax: false };
}

/** `type::db::table` entries as `table` or `db.table`, and LOAD DATA's table. */
function tablesOf(list: readonly string[], ast: Node): string[] {
  const out = new Set<string>();
  for (const entry of list) {
    const [, db, table] = entry.split("::");
    if (!table || table === "null") continue;
    out.add(db && db !== "null" ? `${db}.${table}` : table);
  }
  const t = ast.table as { db?: unknown; table?: unknown } | undefined;
  if (ast.type === "load_data" && t && typeof t.table === "string")
    out.add(typeof t.db === "string" && t.db ? `${t.db}.${t.table}` : t.table);
  return [...out];
}

/** What the grammar made of one statement's text, for statement-shape.ts's check. */
interface Tree {
  readonly type: string;
  readonly ast: unknown;
  readonly tableList: readonly string[];
}

/** One statement by the grammar: exactly one statement, or unreadable; with its tree when read. */
function parsedTree(text: string, dialect: MysqlDialect): { one: One; tree?: Tree } {
  let result: { tableList: string[]; ast: AST[] | AST };
  try {
    result = parserFor(dialect).parse(text, { database: dialect });
  } catch (err) {
    return { one: { ok: false, error: (err as Error).message } };
  }
  const asts = Array.isArray(result.ast) ? result.ast : [result.ast];
  const ast = asts[0] as unknown as Node | undefined;
  if (asts.length !== 1 || !ast || typeof ast.type !== "string") {
    return {
      one: {
        ok: false,
        error: "statement count",
        misread: "text the grammar splits otherwise than the server",
      },
    };
  }
  const { kind, syntax } = kindOf(ast);
  return {
    one: { ok: true, statement: { kind, tables: tablesOf(result.tableList, ast) }, syntax },
    tree: { type: ast.type, ast, tableList: result.tableList },
  };
}

function parsed(text: string, dialect: MysqlDialect): One {
  return parsedTree(text, dialect).one;
}

const ID = "(?:[A-Za-z0-9_$]+|`(?:[^`]|``)+`)";
const QNAME = `(${ID}(?:\\.${ID})?)`;
const STRING = `('(?:[^'\\\\]|\\\\[^]|'')*'|"(?:[^"\\\\]|\\\\[^]|"")*")`;
const re = (src: string) => new RegExp(`^\\s*${src}\\s*$`, "i");

const TRANSACTION = [
  re(`SAVEPOINT\\s+${ID}`),
  re(`RELEASE\\s+SAVEPOINT\\s+${ID}`),
  re(`ROLLBACK(?:\\s+WORK)?\\s+TO(?:\\s+SAVEPOINT)?\\s+${ID}`),
];
const SET_TRANSACTION = re("SET\\s+(?:(?:SESSION|GLOBAL|LOCAL)\\s+)?TRANSACTION\\s+[A-Za-z ,\\s]+");
const SET_NAMES = re("SET\\s+(?:NAMES|CHARACTER\\s+SET|CHARSET)\\s+([^]*)");
const UTF8 = /^'?(utf8mb4|utf8mb3|utf8)'?(\s+COLLATE\s+'?[A-Za-z0-9_]+'?)?$/i;
const PREPARE_LITERAL = re(`PREPARE\\s+${ID}\\s+FROM\\s+${STRING}`);
const EXECUTE_IMMEDIATE_LITERAL = re(`EXECUTE\\s+IMMEDIATE\\s+${STRING}`);
const OTHER = [
  re(`EXECUTE\\s+${ID}(?:\\s+USING\\s+@${ID}(?:\\s*,\\s*@${ID})*)?`),
  re(`(?:DEALLOCATE|DROP)\\s+PREPARE\\s+${ID}`),
  re("KILL\\s+(?:(?:HARD|SOFT)\\s+)?(?:(?:CONNECTION|QUERY)\\s+)?(?:ID\\s+)?\\d+"),
  re("FLUSH\\s+[A-Za-z_ ,\\s]+"),
];
const HANDLER = re(`HANDLER\\s+${QNAME}\\s+[^]*`);
const DO = re("DO\\s+([^]+)");
const INNER = re(
  "(?:EXPLAIN|DESCRIBE|DESC|ANALYZE)(?:\\s+EXTENDED|\\s+PARTITIONS|\\s+FORMAT\\s*=\\s*[A-Za-z]+)?\\s+((?:SELECT|INSERT|UPDATE|DELETE|REPLACE|WITH)\\b[^]*)",
);

function unquoteName(name: string): string {
  return name
    .split(/\.(?=(?:[^`]*`[^`]*`)*[^`]*$)/)
    .map((p) => (p.startsWith("`") ? p.slice(1, -1).replace(/``/g, "`") : p))
    .join(".");
}

const ok = (kind: StatementKind, tables: string[] = [], syntax = false): One => ({
  ok: true,
  statement: { kind, tables },
  syntax,
});

/**
 * Statements node-sql-parser does not know, read by exact patterns: savepoints, SET TRANSACTION,
 * SET NAMES, dynamic SQL (PREPARE and EXECUTE IMMEDIATE of a literal take the literal's kind;
 * EXECUTE of a prepared name is `other`), KILL, FLUSH, HANDLER, DO, and EXPLAIN/ANALYZE of DML.
 */
function byPattern(text: string, dialect: MysqlDialect, depth: number): One | undefined {
  if (TRANSACTION.some((r) => r.test(text))) return ok("transaction");
  if (SET_TRANSACTION.test(text)) return ok("set");
  const names = SET_NAMES.exec(text);
  if (names) return ok("set", [], !UTF8.test((names[1] ?? "").trim()));
  if (OTHER.some((r) => r.test(text))) return ok("other");
  const literal = PREPARE_LITERAL.exec(text) ?? EXECUTE_IMMEDIATE_LITERAL.exec(text);
  if (literal) {
    const inner = unquoteMysql(literal[1] ?? "");
    if (inner === undefined || depth > 2) return undefined;
    const c = classifyMysql(inner, dialect, depth + 1);
    if (!c.ok) return c;
    const [only] = c.statements;
    if (c.statements.length !== 1 || !only) return undefined;
    return { ok: true, statement: only, syntax: c.changesSyntax };
  }
  const handler = HANDLER.exec(text);
  if (handler) return ok("other", [unquoteName(handler[1] ?? "")]);
  const d = DO.exec(text);
  if (d) {
    const select = parsed(`SELECT ${d[1]}`, dialect);
    return select.ok ? { ...select, statement: { ...select.statement, kind: "do" } } : select;
  }
  const inner = INNER.exec(text);
  if (inner) return parsed(inner[1] ?? "", dialect);
  return undefined;
}

/** Statements the shape memory keeps: the grammar's DML (no pattern, no SET, no dynamic SQL). */
const SHAPED_TYPES: ReadonlySet<string> = new Set(["select", "insert", "update", "delete", "replace"]);
/** Shapes kept per session, and their characters: past either, the memory starts over. */
const MAX_SHAPES = 1024;
const MAX_SHAPE_CHARS = 256 * 1024;
/** A statement longer than this is read whole every time. */
const MAX_SHAPE_LENGTH = 8 * 1024;

/**
 * One session's readings of statements by their shape (statement-shape.ts): a shape seen twice
 * is checked once with probe literals, and if the grammar reads every masked literal as a plain
 * value, in a tree of the same kind and tables, later statements of that shape take that reading
 * without a parse. Anything else is read whole, every time.
 */
class ShapeMemory {
  private readonly known = new Map<string, One>();
  private readonly seenOnce = new Set<string>();
  /** Shapes whose probe failed: read whole from now on, not probed again. */
  private readonly unshaped = new Set<string>();
  private entries = 0;
  private chars = 0;
  /** `statementShape` under the session's sql_mode. */
  readonly shapeOf: (text: string) => StatementShape | undefined;

  constructor(
    readonly dialect: MysqlDialect,
    sqlMode: string,
    private readonly onRecall: (() => void) | undefined,
  ) {
    this.shapeOf = shapeReader(sqlMode);
  }

  recall(shape: StatementShape): One | undefined {
    const known = this.known.get(shape.key);
    if (known) this.onRecall?.();
    return known;
  }

  /** Room for one more key: all three start over when the session's budget is spent. */
  private keep(key: string): void {
    if (this.entries >= MAX_SHAPES || this.chars + key.length > MAX_SHAPE_CHARS) {
      this.known.clear();
      this.seenOnce.clear();
      this.unshaped.clear();
      this.entries = 0;
      this.chars = 0;
    }
    this.entries++;
    this.chars += key.length;
  }

  private refuse(key: string): void {
    this.keep(key);
    this.unshaped.add(key);
  }

  learn(shape: StatementShape, one: One, tree: Tree): void {
    if (!one.ok || one.syntax || !SHAPED_TYPES.has(tree.type) || shape.key.length > MAX_SHAPE_LENGTH) return;
    if (this.unshaped.has(shape.key)) return;
    if (!this.seenOnce.has(shape.key)) {
      this.keep(shape.key);
      this.seenOnce.add(shape.key);
      return;
    }
    this.seenOnce.delete(shape.key);
    const probe = parsedTree(probeText(shape), this.dialect);
    if (
      !probe.one.ok ||
      !probe.tree ||
      !sameReading(probe.one, one) ||
      probe.tree.type !== tree.type ||
      !probeLiteralsRead(probe.tree.ast, probe.tree.tableList, shape)
    ) {
      this.refuse(shape.key);
      return;
    }
    this.keep(shape.key);
    const statement = Object.freeze({
      kind: one.statement.kind,
      tables: Object.freeze([...one.statement.tables]),
    });
    this.known.set(shape.key, Object.freeze({ ok: true, statement, syntax: false }));
  }
}

function sameReading(a: One, b: One): boolean {
  if (!a.ok || !b.ok || a.syntax !== b.syntax || a.statement.kind !== b.statement.kind) return false;
  const [x, y] = [a.statement.tables, b.statement.tables];
  return x.length === y.length && x.every((t, i) => t === y[i]);
}

/** A statement's reading, and whether it was its shape's reading, which no literal's value changes. */
type Read = { readonly one: One; readonly anyLiterals: boolean };

function readOne(s: ScannedStatement, dialect: MysqlDialect, depth: number, memory?: ShapeMemory): Read {
  const shape = memory?.shapeOf(s.text);
  const masked = shape && shape.kinds.length > 0 ? shape : undefined;
  const known = masked && memory?.recall(masked);
  if (known) return { one: known, anyLiterals: true };
  return { one: readWhole(s, dialect, depth, masked, memory), anyLiterals: false };
}

function readWhole(
  s: ScannedStatement,
  dialect: MysqlDialect,
  depth: number,
  masked: StatementShape | undefined,
  memory: ShapeMemory | undefined,
): One {
  const { one, tree } = parsedTree(s.text, dialect);
  if (masked && tree) memory?.learn(masked, one, tree);
  if (one.ok || one.misread !== undefined) return one;
  // The text has no comments left: what a pattern matches is all the server reads.
  return byPattern(s.text, dialect, depth) ?? one;
}

/**
 * Reads a message's SQL as a MySQL or MariaDB server would and classifies each statement:
 * the server's lexer splits it (sql-scan.ts: executable comments and `--` without a space are
 * refused as misread), node-sql-parser reads each piece as exactly one statement, and a few
 * statements it does not know are read by exact patterns. Synchronous; never throws.
 */
export function classifyMysql(sql: string, dialect: MysqlDialect = "mariadb", depth = 0): Classification {
  return classifyWith(sql, dialect, depth, undefined);
}

function classifyWith(
  sql: string,
  dialect: MysqlDialect,
  depth: number,
  memory: ShapeMemory | undefined,
): Classification {
  const scan = scanMysql(sql);
  if (!scan.ok) return { ok: false, error: scan.misread, misread: scan.misread };
  const statements: ClassifiedStatement[] = [];
  let syntax = false;
  let anyLiterals = false;
  for (const s of scan.statements) {
    const read = readOne(s, dialect, depth, memory);
    const one = read.one;
    if (!one.ok) return { ok: false, error: one.error, misread: one.misread };
    statements.push(one.statement);
    syntax ||= one.syntax;
    // Only a message that is that one statement, exactly: then its shape is the message's shape.
    anyLiterals = read.anyLiterals && scan.statements.length === 1 && s.text === sql;
  }
  return { ok: true, statements, params: 0, changesSyntax: syntax, sameForAnyLiterals: anyLiterals };
}

/**
 * `classifyMysql` for one session, whose sql_mode is `sqlMode`: the same classifications, with a
 * statement whose shape (its text with plain literals masked, statement-shape.ts) the session
 * already had read and checked taking that reading instead of a parse (`onRecall` is told). A
 * message that is exactly one such statement is `sameForAnyLiterals`: any text of its shape reads
 * the same.
 */
export function mysqlClassifier(
  dialect: MysqlDialect,
  sqlMode: string,
  onRecall?: () => void,
): (sql: string) => Classification {
  const memory = new ShapeMemory(dialect, sqlMode, onRecall);
  return (sql) => classifyWith(sql, dialect, 0, memory);
}
