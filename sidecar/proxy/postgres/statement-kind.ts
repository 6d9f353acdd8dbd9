import { loadModule, parseSync } from "libpg-query";
import type { Classification, StatementKind } from "../statement-policy.js";

let loading: Promise<void> | undefined;

/** Loads PostgreSQL's parser (WASM, about 0.1 s once per process); classification needs it. */
export function loadPostgresGrammar(): Promise<void> {
  loading ??= loadModule().catch((err: unknown) => {
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
const DML_RANK: Readonly<Record<string, number>> = {
  SelectStmt: 0,
  InsertStmt: 1,
  UpdateStmt: 2,
  DeleteStmt: 3,
};
const DML_KINDS: readonly StatementKind[] = ["select", "insert", "update", "delete"];
const MERGE_RANK: Readonly<Record<string, number>> = { CMD_INSERT: 1, CMD_UPDATE: 2, CMD_DELETE: 3 };

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

/** Every node of a parse tree, depth first, as (type name, fields). */
function* walk(value: unknown): Generator<[string, Node]> {
  if (Array.isArray(value)) {
    for (const v of value) yield* walk(v);
    return;
  }
  if (typeof value !== "object" || value === null) return;
  for (const [key, child] of Object.entries(value as Node)) {
    if (typeof child !== "object" || child === null) continue;
    if (/^[A-Z]/.test(key) && !Array.isArray(child)) yield [key, child as Node];
    yield* walk(child);
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

/** The tables a statement names, in order of appearance, each once. */
function tablesOf(stmt: unknown): string[] {
  const out = new Set<string>();
  const top = only(stmt);
  if (top) {
    const [type, body] = top;
    if (type === "DropStmt" && DROPPED_RELATIONS.has(body.removeType as string)) {
      for (const o of (body.objects as unknown[]) ?? []) {
        const name = nameList(o);
        if (name) out.add(name);
      }
    }
  }
  collectRelations(stmt, out);
  return [...out];
}

/** Every RangeVar of a tree: wrapped (`{ RangeVar: {...} }`) or inline (`relation: {...}`). */
function collectRelations(value: unknown, out: Set<string>): void {
  if (Array.isArray(value)) {
    for (const v of value) collectRelations(v, out);
    return;
  }
  if (typeof value !== "object" || value === null) return;
  const node = value as Node;
  if (typeof node.relname === "string") out.add(relationName(node));
  for (const child of Object.values(node)) if (typeof child === "object") collectRelations(child, out);
}

/** The kind of one parsed statement (`{ SelectStmt: {...} }`). */
function kindOf(stmt: unknown): StatementKind {
  const top = only(stmt);
  if (!top) return "other";
  const [type, body] = top;
  if (type === "ExplainStmt" || type === "PrepareStmt" || type === "DeclareCursorStmt")
    return kindOf(body.query);
  if (type === "SelectStmt" && body.intoClause) return "ddl";
  if (type in DML_RANK || type === "MergeStmt") {
    // A data-modifying WITH (or MERGE's actions) makes the statement its strongest part.
    let rank = DML_RANK[type] ?? 0;
    for (const [t, b] of [[type, body] as [string, Node], ...walk(body)]) {
      if (t in DML_RANK) rank = Math.max(rank, DML_RANK[t] ?? 0);
      if (t === "MergeWhenClause") rank = Math.max(rank, MERGE_RANK[b.commandType as string] ?? 2);
      if (t === "MergeStmt") rank = Math.max(rank, 1);
    }
    return DML_KINDS[rank] ?? "delete";
  }
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
  if (sql.trim() === "") return { ok: true, statements: [], params: 0 };
  let tree: { stmts?: Array<{ stmt?: unknown }> };
  try {
    tree = parseSync(sql) as typeof tree;
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
  const statements = (tree.stmts ?? []).map(({ stmt }) => ({ kind: kindOf(stmt), tables: tablesOf(stmt) }));
  let params = 0;
  // Only a statement with placeholders has ParamRef nodes; most need no second walk.
  if (sql.includes("$")) {
    for (const [type, body] of walk(tree.stmts)) {
      if (type === "ParamRef" && typeof body.number === "number") params = Math.max(params, body.number);
    }
  }
  return { ok: true, statements, params };
}
