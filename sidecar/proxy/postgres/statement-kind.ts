import type { Classification, StatementKind } from "../statement-policy.js";

let loading: Promise<void> | undefined;
/** libpg-query's parser, once loaded: imported with the grammar, so a start without a PostgreSQL session never loads it. */
let parseSync: ((sql: string) => unknown) | undefined;

/** Loads PostgreSQL's parser (WASM, about 0.1 s once per process); classification needs it. */
export function loadPostgresGrammar(): Promise<void> {
  loading ??= import("libpg-query")
    .then(async (pg) => {
      await pg.loadModule();
      parseSync = pg.parseSync;
    })
    .catch((err: unknown) => {
      loading = undefined;
      throw err;
    });
  return loading;
}

type Node = Record<string, unknown>;

/** Roles, grants, ownership, row security and user mappings. */
const DCL = new Set([
  "GrantStmt",
  "GrantRoleStmt",
  "AlterDefaultPrivilegesStmt",
  "CreateRoleStmt",
  "AlterRoleStmt",
  "AlterRoleSetStmt",
  "DropRoleStmt",
  "DropOwnedStmt",
  "ReassignOwnedStmt",
  "CreateUserMappingStmt",
  "AlterUserMappingStmt",
  "DropUserMappingStmt",
  "CreatePolicyStmt",
  "AlterPolicyStmt",
]);

/** Neither data nor schema: reading settings, cursors, notifications, locks, maintenance. */
const OTHER = new Set([
  "VariableShowStmt",
  "ClosePortalStmt",
  "FetchStmt",
  "NotifyStmt",
  "ListenStmt",
  "UnlistenStmt",
  "CheckPointStmt",
  "LockStmt",
  "ExecuteStmt",
  "DeallocateStmt",
  "VacuumStmt",
  "ClusterStmt",
  "ReindexStmt",
  "ReturnStmt",
  "PLAssignStmt",
]);

const FIXED: Readonly<Record<string, StatementKind>> = {
  CopyStmt: "copy",
  CallStmt: "call",
  DoStmt: "do",
  TransactionStmt: "transaction",
  VariableSetStmt: "set",
  DiscardStmt: "set",
  ConstraintsSetStmt: "set",
};

/** Data-modifying statements, weakest first: a statement is its strongest part. */
const DML_RANK = new Map<string, number>([
  ["SelectStmt", 0],
  ["InsertStmt", 1],
  ["MergeStmt", 1],
  ["UpdateStmt", 2],
  ["DeleteStmt", 3],
]);
const DML_KINDS: readonly StatementKind[] = ["select", "insert", "update", "delete"];
const MERGE_RANK = new Map<unknown, number>([
  ["CMD_INSERT", 1],
  ["CMD_UPDATE", 2],
  ["CMD_DELETE", 3],
]);

/** `DROP` of these names tables (its objects are name lists, not RangeVars). */
const DROPPED_RELATIONS = new Set([
  "OBJECT_TABLE",
  "OBJECT_VIEW",
  "OBJECT_MATVIEW",
  "OBJECT_FOREIGN_TABLE",
  "OBJECT_SEQUENCE",
  "OBJECT_INDEX",
]);

function only(node: unknown): [string, Node] | undefined {
  if (typeof node !== "object" || node === null) return undefined;
  const [entry] = Object.entries(node as Node);
  return entry && typeof entry[1] === "object" && entry[1] !== null
    ? [entry[0], entry[1] as Node]
    : undefined;
}

/** Settings that change how the server reads SQL text, and the values that keep it as the grammar reads it. */
const SYNTAX_SETTINGS = new Map<string, ReadonlySet<string>>([
  ["client_encoding", new Set(["utf8", "utf-8", "unicode"])],
  ["standard_conforming_strings", new Set(["on", "true", "1", "yes"])],
]);

function constantText(node: unknown): string | undefined {
  const c = (node as { A_Const?: { sval?: { sval?: unknown } } } | undefined)?.A_Const?.sval?.sval;
  return typeof c === "string" ? c.toLowerCase() : undefined;
}

/** A call of a function named set_config (in any schema, in any case). */
function isSetConfig(node: Node): boolean {
  const name = (node.funcname as unknown[] | undefined)?.at(-1) as
    | { String?: { sval?: unknown } }
    | undefined;
  const sval = name?.String?.sval;
  return typeof sval !== "string" || sval.toLowerCase() === "set_config";
}

/** `SET client_encoding = 'SJIS'`, `SET standard_conforming_strings = off`, or `set_config` of either (or of a name not given as a constant). */
function changesSyntax(key: string, node: Node): boolean {
  if (key === "VariableSetStmt") {
    const safe = SYNTAX_SETTINGS.get(String(node.name).toLowerCase());
    if (!safe || node.kind !== "VAR_SET_VALUE") return false;
    const args = (node.args as unknown[] | undefined) ?? [];
    return !(args.length === 1 && safe.has(constantText(args[0]) ?? "\0"));
  }
  if (key === "FuncCall") {
    const name = (node.funcname as unknown[] | undefined)?.at(-1) as
      | { String?: { sval?: unknown } }
      | undefined;
    if (name?.String?.sval !== "set_config") return false;
    const setting = constantText((node.args as unknown[] | undefined)?.[0]);
    return setting === undefined || SYNTAX_SETTINGS.has(setting);
  }
  return false;
}

/** What one walk of a statement's tree finds. */
interface Found {
  readonly tables: Set<string>;
  /** The strongest data-modifying node (DML_RANK), -1 for none. */
  rank: number;
  /** The highest parameter placeholder. */
  params: number;
  /** It would change client_encoding or standard_conforming_strings ({@link changesSyntax}). */
  syntax: boolean;
  /** A node whose classification reads a constant's value (SET, set_config): see `sameForAnyLiterals`. */
  readsConstants: boolean;
}

/**
 * One depth-first walk: every RangeVar (wrapped, `{ RangeVar: {...} }`, or inline,
 * `relation: {...}`), the strongest data-modifying node, the highest ParamRef.
 */
function scan(value: unknown, found: Found): void {
  if (typeof value !== "object" || value === null) return;
  if (Array.isArray(value)) {
    for (const v of value) scan(v, found);
    return;
  }
  const node = value as Node;
  if (typeof node.relname === "string") found.tables.add(relationName(node));
  for (const key in node) {
    const child = node[key];
    if (typeof child !== "object" || child === null) continue;
    const rank = DML_RANK.get(key);
    if (rank !== undefined && rank > found.rank) found.rank = rank;
    else if (key === "MergeWhenClause") {
      const r = MERGE_RANK.get((child as Node).commandType) ?? 2;
      if (r > found.rank) found.rank = r;
    } else if (key === "ParamRef") {
      const n = (child as Node).number;
      if (typeof n === "number" && n > found.params) found.params = n;
    } else if (key === "VariableSetStmt" || key === "FuncCall") {
      if (key === "VariableSetStmt" || isSetConfig(child as Node)) found.readsConstants = true;
      if (changesSyntax(key, child as Node)) found.syntax = true;
    }
    scan(child, found);
  }
}

function relationName(rv: Node): string {
  return [rv.catalogname, rv.schemaname, rv.relname].filter((p) => typeof p === "string").join(".");
}

function nameList(list: unknown): string | undefined {
  const items = (only(list)?.[1]?.items ?? list) as unknown;
  if (!Array.isArray(items)) return undefined;
  const parts = items.map((i) => (only(i)?.[1] as { sval?: unknown } | undefined)?.sval);
  return parts.every((p) => typeof p === "string") ? parts.join(".") : undefined;
}

/** `DROP TABLE a, s.b`: names as lists of strings, not RangeVars. */
function droppedTables(type: string, body: Node, out: Set<string>): void {
  if (type !== "DropStmt" || !DROPPED_RELATIONS.has(body.removeType as string)) return;
  for (const o of (body.objects as unknown[]) ?? []) {
    const name = nameList(o);
    if (name) out.add(name);
  }
}

/** The kind of one parsed statement (`{ SelectStmt: {...} }`), given its tree's strongest DML rank. */
function kindOf(stmt: unknown, rank: number): StatementKind {
  const top = only(stmt);
  if (!top) return "other";
  const [type, body] = top;
  if (type === "ExplainStmt" || type === "PrepareStmt" || type === "DeclareCursorStmt")
    return kindOf(body.query, rank);
  if (type === "SelectStmt" && body.intoClause) return "ddl";
  // A data-modifying WITH (or MERGE's actions) makes the statement its strongest part.
  if (DML_RANK.has(type)) return DML_KINDS[Math.max(rank, 0)] ?? "delete";
  if (DCL.has(type)) return "dcl";
  if (OTHER.has(type)) return "other";
  const fixed = FIXED[type];
  if (fixed) return fixed;
  // Create…, Alter…, Drop…, Rename, Comment, Truncate, Index, View, Define, Rule, Load…
  return "ddl";
}

/**
 * Parses a message's SQL with PostgreSQL's own grammar (libpg-query) and classifies each
 * statement. Synchronous once {@link loadPostgresGrammar} has resolved; never throws.
 */
export function classifyPostgres(sql: string): Classification {
  // The grammar refuses an empty string; PostgreSQL answers it with EmptyQueryResponse.
  if (sql.trim() === "") return { ok: true, statements: [], params: 0, changesSyntax: false };
  let tree: { stmts?: Array<{ stmt?: unknown }> };
  try {
    if (parseSync === undefined) throw new Error("PostgreSQL's grammar is not loaded");
    tree = parseSync(sql) as typeof tree;
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
  let params = 0;
  let syntax = false;
  let readsConstants = false;
  const statements = (tree.stmts ?? []).map(({ stmt }) => {
    const found: Found = { tables: new Set(), rank: -1, params: 0, syntax: false, readsConstants: false };
    const top = only(stmt);
    if (top) droppedTables(top[0], top[1], found.tables);
    scan(stmt, found);
    params = Math.max(params, found.params);
    syntax ||= found.syntax;
    readsConstants ||= found.readsConstants;
    return { kind: kindOf(stmt, found.rank), tables: [...found.tables] };
  });
  // Kinds, tables and placeholders come from the tree's node types and identifiers, never from
  // a constant's value; only the syntax settings' check reads values (SET, set_config).
  return { ok: true, statements, params, changesSyntax: syntax, sameForAnyLiterals: !readsConstants };
}
