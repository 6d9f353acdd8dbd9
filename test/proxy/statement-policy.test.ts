import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LeaseRecord } from "../../sidecar/leases/index.js";
import { loadPolicy, type PolicyEngine, type PolicyRequest } from "../../sidecar/policy/index.js";
import { classifyPostgres, loadPostgresGrammar } from "../../sidecar/proxy/postgres/statement-kind.js";
import { mysqlClassifier } from "../../sidecar/proxy/mysql/statement-kind.js";
import { statementShape } from "../../sidecar/proxy/mysql/statement-shape.js";
import { pgStatementShape } from "../../sidecar/proxy/postgres/statement-shape.js";
import { StatementPolicy, type StatementPolicyPort } from "../../sidecar/proxy/statement-policy.js";

/** The README's worked policy: intent read may only select from orders and customers; DDL needs an approval. */
const WORKED = `@id("read-only-selects")
permit (principal, action == Action::"statement", resource == Resource::"orders-db")
when {
  context.intent == "read" &&
  context.statement_kind == "select" &&
  ["orders", "customers"].containsAll(context.tables)
};

@id("write-dml")
permit (principal, action == Action::"statement", resource == Resource::"orders-db")
when {
  context.intent == "write" &&
  ["select", "insert", "update", "delete", "transaction"].contains(context.statement_kind)
};

@id("ddl-with-approval")
permit (principal, action == Action::"statement", resource == Resource::"orders-db")
when { context.intent == "write" && context.statement_kind == "ddl" && context.approved };
`;

let dir: string;
let engine: PolicyEngine;

function lease(intent: string, approver?: string): LeaseRecord {
  return {
    id: "lease_1",
    resource: "orders-db",
    agent: "spiffe://example.org/agent/a",
    task: { id: "T-1" },
    intent: { action: intent, tool: "psql" },
    ...(approver ? { approver } : {}),
    account: "app_1",
    state: "active",
    issued_at: Date.now(),
    expires_at: Date.now() + 60_000,
    max_expires_at: Date.now() + 60_000,
  };
}

function policyFor(
  l: LeaseRecord,
  policy: StatementPolicyPort | undefined = engine,
  unparseable: "deny" | "allow" = "deny",
) {
  return new StatementPolicy({
    policy,
    lease: l,
    resource: "orders-db",
    groups: [],
    unparseable,
    classify: classifyPostgres,
  });
}

beforeAll(async () => {
  await loadPostgresGrammar();
  dir = await mkdtemp(join(tmpdir(), "lh-stmt-policy-"));
  await writeFile(join(dir, "policy.cedar"), WORKED);
  engine = await loadPolicy({ file: join(dir, "policy.cedar") });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("StatementPolicy (the worked policy)", () => {
  it("intent read: selects from orders and customers only", () => {
    const p = policyFor(lease("read"));
    expect(p.judge("SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id").allowed).toBe(true);
    expect(p.judge("SELECT 1").allowed).toBe(true);
    for (const sql of [
      "SELECT * FROM payroll",
      "DELETE FROM orders",
      "DROP TABLE orders",
      "COPY orders TO PROGRAM 'curl x'",
      "SELECT 1; DROP TABLE orders",
      "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
      "CALL purge()",
      "DO $$BEGIN EXECUTE 'DROP TABLE orders'; END$$",
      "GRANT SELECT ON orders TO public",
    ]) {
      const v = p.judge(sql);
      expect(v.allowed, sql).toBe(false);
      if (!v.allowed) {
        expect(v.message).toMatch(/^leasehold: statement refused by policy \(/);
        expect(v.reason).toMatch(/^42501 /);
      }
    }
  });

  it("says which statement of several was refused", () => {
    const v = policyFor(lease("read")).judge("SELECT * FROM orders; DROP TABLE customers");
    expect(v).toMatchObject({
      allowed: false,
      message:
        "leasehold: statement refused by policy (ddl on customers, in a message of several statements)",
    });
  });

  it("intent write: DML passes; DDL needs a lease a human approved", () => {
    const unapproved = policyFor(lease("write"));
    expect(unapproved.judge("UPDATE orders SET total = 0 WHERE id = 1").allowed).toBe(true);
    const v = unapproved.judge("ALTER TABLE orders ADD COLUMN note text");
    expect(v).toMatchObject({ allowed: false, policies: ["ddl-with-approval"] });
    if (!v.allowed) expect(v.reason).toContain("needs a human approval");
    const approved = policyFor(lease("write", "alice"));
    expect(approved.judge("ALTER TABLE orders ADD COLUMN note text").allowed).toBe(true);
    // DO and CALL stay refused: no policy names them.
    expect(approved.judge("DO $$BEGIN NULL; END$$").allowed).toBe(false);
    expect(approved.judge("CALL p()").allowed).toBe(false);
  });

  it("unparseable input: denied by default, let through with unparseable: allow", () => {
    const v = policyFor(lease("read")).judge("SELECT 'hunter2' 'x'");
    expect(v).toMatchObject({ allowed: false, params: 0 });
    // The grammar's message quotes the text near the error: it stays out of the audit reason.
    expect(JSON.stringify(v)).not.toContain("hunter2");
    expect(policyFor(lease("read"), engine, "allow").judge("SELEC 1").allowed).toBe(true);
  });

  it("no engine: every statement is refused", () => {
    const none = new StatementPolicy({
      policy: undefined,
      lease: lease("read"),
      resource: "orders-db",
      groups: [],
      unparseable: "allow",
      classify: classifyPostgres,
    });
    expect(none.judge("SELECT 1")).toMatchObject({
      allowed: false,
      reason: "42501 select on no table: no policy engine",
    });
  });

  it("refusals carry the statement's parameter count", () => {
    expect(policyFor(lease("read")).judge("DELETE FROM orders WHERE id = $1 AND total > $3")).toMatchObject({
      allowed: false,
      params: 3,
    });
  });

  it("asks Cedar once per (kind, tables, multiple) in a session; again after a reload or in a new hour", () => {
    const calls: PolicyRequest[] = [];
    let ids: readonly string[] = engine.policyIds;
    const counting: StatementPolicyPort = {
      decide: (req) => {
        calls.push(req);
        return engine.decide(req);
      },
      get policyIds() {
        return ids;
      },
    };
    let clock = Date.UTC(2030, 0, 1, 9, 0);
    const p = new StatementPolicy({
      policy: counting,
      lease: lease("read"),
      resource: "orders-db",
      groups: [],
      unparseable: "deny",
      classify: classifyPostgres,
      now: () => clock,
    });
    for (let i = 0; i < 5; i++) expect(p.judge(`SELECT * FROM orders WHERE id = ${i}`).allowed).toBe(true);
    expect(p.judge("DROP TABLE orders").allowed).toBe(false);
    expect(p.judge("drop table orders").allowed).toBe(false);
    expect(calls).toHaveLength(2);
    expect(calls[0]).toMatchObject({
      action: "statement",
      principal: "spiffe://example.org/agent/a",
      resource: "orders-db",
      context: {
        intent: "read",
        task_id: "T-1",
        tool: "psql",
        hour_utc: 9,
        statement_kind: "select",
        tables: ["orders"],
        multiple: false,
      },
    });
    ids = [...ids];
    p.judge("SELECT * FROM orders");
    expect(calls).toHaveLength(3);
    clock += 3_600_000;
    p.judge("SELECT * FROM orders");
    expect(calls).toHaveLength(4);
    expect(calls[3]?.context.hour_utc).toBe(10);
  });

  it("keeps verdicts per shape: a new literal is not parsed again, a setting's value always is", () => {
    const parsed: string[] = [];
    let ids: readonly string[] = engine.policyIds;
    const p = new StatementPolicy({
      policy: {
        decide: (req) => engine.decide(req),
        get policyIds() {
          return ids;
        },
      },
      lease: lease("read"),
      resource: "orders-db",
      groups: [],
      unparseable: "deny",
      classify: (sql) => {
        parsed.push(sql);
        return classifyPostgres(sql);
      },
      shape: pgStatementShape,
    });
    for (let i = 0; i < 5; i++)
      expect(p.judge(`SELECT * FROM orders WHERE id = ${i} AND n = '${i}'`).allowed).toBe(true);
    expect(p.judge("SELECT * FROM payroll WHERE id = 1").allowed).toBe(false);
    expect(p.judge("SELECT * FROM payroll WHERE id = 2").allowed).toBe(false);
    // No shape (a dollar quote): kept per text.
    expect(p.judge("SELECT $$x$$ FROM orders").allowed).toBe(true);
    expect(p.judge("SELECT $$x$$ FROM orders").allowed).toBe(true);
    expect(parsed).toHaveLength(3);
    // SET: the classification reads the value, so each text is parsed (and kept by text only).
    expect(p.judge("SET client_encoding = 'UTF8'").allowed).toBe(false);
    const sjis = p.judge("SET client_encoding = 'SJIS'");
    expect(sjis).toMatchObject({ allowed: false, reason: expect.stringContaining("client_encoding") });
    expect(parsed).toHaveLength(5);
    // A reload starts the shapes over.
    ids = [...ids];
    p.judge("SELECT * FROM orders WHERE id = 9 AND n = '9'");
    expect(parsed).toHaveLength(6);
  });

  it("MySQL: once the classifier has checked a statement's shape, later texts of that shape are neither read nor decided again; other shapes and several statements are", () => {
    const classified: string[] = [];
    const decided: PolicyRequest[] = [];
    const read = mysqlClassifier("mariadb", "STRICT_TRANS_TABLES");
    const p = new StatementPolicy({
      policy: {
        decide: (req) => {
          decided.push(req);
          return engine.decide(req);
        },
        policyIds: engine.policyIds,
      },
      lease: lease("read"),
      resource: "orders-db",
      groups: [],
      unparseable: "deny",
      classify: (sql) => {
        classified.push(sql);
        return read(sql);
      },
      shape: (sql) => statementShape(sql, "STRICT_TRANS_TABLES")?.key,
    });
    // Read whole twice (the second time the shape is probed and kept), then recalled once: from
    // then on the verdict is the shape's.
    for (let i = 0; i < 6; i++)
      expect(p.judge(`SELECT * FROM orders WHERE id = ${i} AND n = 'n${i}'`).allowed).toBe(true);
    expect(classified).toHaveLength(3);
    expect(decided).toHaveLength(1);
    // Another table is another shape: read, and refused.
    expect(p.judge("SELECT * FROM payroll WHERE id = 1").allowed).toBe(false);
    // The known shape followed by a second statement is no shape: read whole, and refused.
    expect(p.judge("SELECT * FROM orders WHERE id = 7 AND n = 'n7'; DROP TABLE orders").allowed).toBe(false);
    // A comment hides nothing from the shape: no shape, read whole.
    expect(p.judge("SELECT * FROM orders WHERE id = 8 AND n = 'n8' /* x */").allowed).toBe(true);
    expect(classified).toHaveLength(6);
  });
});
