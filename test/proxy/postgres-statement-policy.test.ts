import { createHash } from "node:crypto";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { asSuperuser, type ScramPostgres } from "../support/pg-cluster.js";
import { waitFor } from "../support/wait-for.js";
import { type Checkout, listenerPort, type ProxyHarness } from "./harness.js";
import { leaseClient, pgResource, startPgProxy } from "./pg-setup.js";
import { pgError, pgMessages, pgStartup, rawConnect, readUntil, scramLogin } from "./wire.js";
import { refusalOf } from "../support/refusal.js";

const RESOURCE = "px-pg-stmt";
const PLAIN = "px-pg-plain";

/**
 * The README's worked policy: intent read may only select from the orders and customers
 * tables; DDL needs an approval (intent `migrate`: the checkout asks a human, and the lease it
 * gives carries the approval into each statement's `context.approved`). Intent `write` may
 * change rows and, for the test, run DDL without approval.
 */
const POLICY = `@id("checkout")
permit (
  principal,
  action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"],
  resource
)
when { context.intent == "read" || context.intent == "write" };

@id("migrate-with-approval")
permit (principal, action == Action::"checkout", resource)
when { context.intent == "migrate" && context.approved };

@id("ddl-with-approval")
permit (principal, action == Action::"statement", resource)
when { context.intent == "migrate" && context.statement_kind == "ddl" && context.approved };

@id("read-selects-orders-customers")
permit (principal, action == Action::"statement", resource)
when {
  context.intent == "read" &&
  context.statement_kind == "select" &&
  ["ps_orders", "ps_customers"].containsAll(context.tables)
};

@id("write-dml-ddl")
permit (principal, action == Action::"statement", resource)
when {
  context.intent == "write" &&
  ["select", "insert", "update", "delete", "ddl"].contains(context.statement_kind)
};
`;

let h: ProxyHarness;
let cluster: ScramPostgres;
let proxy: ProxyManager;
let reader: Checkout;

async function connect(l: Checkout, resource = RESOURCE, extra: pg.ClientConfig = {}): Promise<pg.Client> {
  const c = leaseClient(l, listenerPort(proxy, resource), extra);
  await c.connect();
  return c;
}

const refusal = (p: Promise<unknown>) => refusalOf<{ code?: string; message: string; hint?: string }>(p);

/** One typed protocol message. */
function msg(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, "latin1");
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

const ready = (b: Buffer) => pgMessages(b).some((m) => m.type === "Z");

/** A raw protocol session through the listener, logged in with the reader's lease, at ReadyForQuery. */
async function rawLogin(params: Record<string, string>) {
  const s = await rawConnect(listenerPort(proxy, RESOURCE));
  s.on("error", () => undefined);
  s.write(pgStartup(params));
  await scramLogin(s, reader.token, ready);
  return s;
}

const digest = (text: string) => `sha256:${createHash("sha256").update(text, "utf8").digest("hex")}`;

async function statementDecisions(): Promise<Array<Record<string, unknown>>> {
  return (await h.auditRecords()).filter((r) => r.event === "decision" && r.scope === "statement");
}

async function orderCount(): Promise<number> {
  return asSuperuser(cluster, async (c) =>
    Number((await c.query("select count(*) as n from ps_orders")).rows[0].n),
  );
}

beforeAll(async () => {
  const setup = await startPgProxy({ name: "proxy-stmt", policy: POLICY, admin: "ps_admin" });
  ({ h, cluster } = setup);
  await asSuperuser(cluster, async (c) => {
    for (let i = 1; i <= 4; i++)
      await c.query(`CREATE ROLE ps_app_${i} LOGIN PASSWORD 'x${i}${setup.admin.password}'`);
    await c.query("CREATE TABLE ps_orders (id int primary key, total int)");
    await c.query("CREATE TABLE ps_customers (id int primary key, name text)");
    await c.query("CREATE TABLE ps_secrets (id int)");
    await c.query("INSERT INTO ps_orders SELECT g, g * 10 FROM generate_series(1, 5) g");
    await c.query("GRANT ALL ON ps_orders, ps_customers, ps_secrets TO PUBLIC");
    await c.query("GRANT CREATE ON SCHEMA public TO PUBLIC");
  });
  await h.register({
    ...pgResource(setup),
    name: RESOURCE,
    accounts: ["ps_app_1", "ps_app_2", "ps_app_3"],
    proxy: { port: 0, statementPolicy: true },
  });
  await h.register({ ...pgResource(setup), name: PLAIN, accounts: ["ps_app_4"], proxy: { port: 0 } });
  proxy = await h.manager({ policy: h.node.policy, auditStatements: "digest" });
  reader = await h.checkout(RESOURCE, { intent: "read" });
}, 120_000);

afterAll(async () => {
  await h?.close();
  await cluster?.stop();
});

describe("statement policy on the PostgreSQL listener", () => {
  it("under intent read, SELECT from the named tables works", async () => {
    const c = await connect(reader);
    try {
      const r = await c.query(
        "SELECT o.id, o.total FROM ps_orders o LEFT JOIN ps_customers c ON c.id = o.id",
      );
      expect(r.rows).toHaveLength(5);
      // The extended protocol, with parameters.
      const p = await c.query({
        name: "by-id",
        text: "SELECT total FROM ps_orders WHERE id = $1",
        values: [2],
      });
      expect(p.rows).toEqual([{ total: 20 }]);
      const again = await c.query({
        name: "by-id",
        text: "SELECT total FROM ps_orders WHERE id = $1",
        values: [3],
      });
      expect(again.rows).toEqual([{ total: 30 }]);
    } finally {
      await c.end();
    }
  });

  it("refuses DROP TABLE, DELETE, COPY TO PROGRAM, a second statement and DDL in a prepared statement with 42501; the session goes on", async () => {
    const before = (await statementDecisions()).length;
    const c = await connect(reader);
    const refused: Array<{ text: string; kind: string; tables: string }> = [
      { text: "DROP TABLE ps_orders", kind: "ddl", tables: "ps_orders" },
      { text: "DELETE FROM ps_orders", kind: "delete", tables: "ps_orders" },
      { text: "COPY ps_orders TO PROGRAM 'cat > /dev/null'", kind: "copy", tables: "ps_orders" },
      { text: "SELECT 1; DROP TABLE ps_orders", kind: "ddl", tables: "ps_orders" },
      { text: "SELECT * FROM ps_secrets", kind: "select", tables: "ps_secrets" },
      { text: "DO $$BEGIN EXECUTE 'DROP TABLE ps_orders'; END$$", kind: "do", tables: "no table" },
      // A quote and a dollar in a table's name reach the client's message safely.
      { text: `SELECT * FROM "o'rders$x"`, kind: "select", tables: "o'rders?x" },
    ];
    try {
      for (const r of refused) {
        const err = await refusal(c.query(r.text));
        expect(err.code, r.text).toBe("42501");
        expect(err.message, r.text).toContain(
          `leasehold: statement refused by policy (${r.kind} on ${r.tables}`,
        );
        // The session goes on.
        expect((await c.query("SELECT count(*)::int AS n FROM ps_orders")).rows).toEqual([{ n: 5 }]);
      }
      // A DDL hidden in a named prepared statement (extended protocol: Parse/Bind/Execute).
      const ddl = "ALTER TABLE ps_orders DROP COLUMN total";
      const e1 = await refusal(c.query({ name: "hidden", text: ddl, values: [] }));
      expect(e1.code).toBe("42501");
      expect(e1.message).toContain("(ddl on ps_orders)");
      // A DELETE with parameters, in a named statement, reused: refused each time.
      const del = "DELETE FROM ps_orders WHERE id = $1";
      for (const id of [1, 2]) {
        const e2 = await refusal(c.query({ name: "del", text: del, values: [id] }));
        expect(e2.code).toBe("42501");
      }
      expect((await c.query("SELECT count(*)::int AS n FROM ps_orders")).rows).toEqual([{ n: 5 }]);
    } finally {
      await c.end();
    }
    // The table is intact.
    expect(await orderCount()).toBe(5);
    await asSuperuser(cluster, async (s) => {
      const cols = await s.query(
        "select column_name from information_schema.columns where table_name = 'ps_orders'",
      );
      expect(cols.rows.map((r) => r.column_name).sort()).toEqual(["id", "total"]);
    });
    // Each refusal is one decision record: the digest of the text, never the text; the policy.
    const records = await waitFor("the refusals' decision records", async () => {
      const all = (await statementDecisions()).slice(before);
      // The second DELETE reuses the prepared statement: no new Parse, no new decision.
      return all.length >= refused.length + 2 ? all : undefined;
    });
    for (const r of refused) {
      const rec = records.find((x) => x.digest === digest(r.text));
      expect(rec, r.text).toMatchObject({
        event: "decision",
        scope: "statement",
        decision: "deny",
        lease_id: reader.leaseId,
        resource: RESOURCE,
      });
      expect(String(rec?.reason)).toContain(r.kind);
    }
    expect(records.find((x) => x.digest === digest("ALTER TABLE ps_orders DROP COLUMN total"))).toBeDefined();
    const raw = JSON.stringify(records);
    for (const r of refused) expect(raw).not.toContain(r.text);
    expect(raw).not.toContain("DROP COLUMN");
  });

  it("a fast-path FunctionCall (no SQL to decide on) is refused with 42501; the session goes on", async () => {
    const s = await rawLogin({ user: reader.leaseId, database: "postgres" });
    try {
      // FunctionCall: pg_catalog.now() (OID 1299), no argument formats, no arguments, text result.
      const body = Buffer.alloc(4 + 2 + 2 + 2);
      body.writeInt32BE(1299, 0);
      const answer = readUntil(s, ready);
      s.write(msg("F", body));
      const out = await answer;
      expect(pgError(out)).toMatchObject({
        C: "42501",
        M: expect.stringContaining("fast-path function call"),
      });
      const next = readUntil(s, ready);
      s.write(msg("Q", Buffer.from("SELECT 1 FROM ps_orders LIMIT 1\0")));
      expect(pgError(await next)).toBeUndefined();
    } finally {
      s.destroy();
    }
  });

  it("SQL the server would read otherwise than the grammar is refused (client_encoding, standard_conforming_strings)", async () => {
    const c = await connect(reader);
    try {
      for (const sql of [
        "SET standard_conforming_strings = off",
        "SET client_encoding = 'SJIS'",
        "SELECT set_config('client_encoding', 'SJIS', false)",
      ]) {
        const err = await refusal(c.query(sql));
        expect(err.code, sql).toBe("42501");
        expect(err.message, sql).toContain("it changes how the server reads SQL");
      }
      expect((await c.query("SHOW standard_conforming_strings")).rows).toEqual([
        { standard_conforming_strings: "on" },
      ]);
    } catch (err) {
      // SHOW is kind other: not permitted by the read policy either.
      expect((err as { code?: string }).code).toBe("42501");
    } finally {
      await c.end();
    }
    // Set at login (startup options): the server reports it, the listener follows.
    const off = await connect(reader, RESOURCE, { options: "-c standard_conforming_strings=off" });
    try {
      expect((await off.query("SELECT count(*)::int AS n FROM ps_orders")).rows).toEqual([{ n: 5 }]);
      // With a backslash, the text could end a string where the grammar does not.
      const smuggle = "SELECT '\\'' ; DROP TABLE ps_orders ; -- ' FROM ps_orders";
      const err = await refusal(off.query(smuggle));
      expect(err.code).toBe("42501");
      expect(err.message).toContain("standard_conforming_strings");
    } finally {
      await off.end();
    }
    // A client that logs in with client_encoding SJIS (pg sends UTF8 itself: a raw login here).
    const sjis = await rawLogin({ user: reader.leaseId, database: "postgres", client_encoding: "SJIS" });
    try {
      const answer = readUntil(sjis, ready);
      sjis.write(msg("Q", Buffer.from("SELECT count(*) FROM ps_orders\0")));
      const e = pgError(await answer);
      expect(e).toMatchObject({ C: "42501", M: expect.stringContaining("client_encoding") });
    } finally {
      sjis.destroy();
    }
    expect(await orderCount()).toBe(5);
  });

  it("a statement the grammar cannot parse is refused (proxy.unparseable: deny)", async () => {
    const c = await connect(reader);
    try {
      const err = await refusal(c.query("SELEC 1"));
      expect(err.code).toBe("42501");
      expect(err.message).toContain("the grammar cannot parse it");
      expect((await c.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
    }
  });

  it("under intent write the DDL goes through", async () => {
    const writer = await h.checkout(RESOURCE, { intent: "write" });
    const c = await connect(writer);
    try {
      await c.query("CREATE TABLE ps_scratch (a int)");
      await c.query({ name: "ins", text: "INSERT INTO ps_scratch VALUES ($1)", values: [7] });
      expect((await c.query("SELECT a FROM ps_scratch")).rows).toEqual([{ a: 7 }]);
      await c.query("DROP TABLE ps_scratch");
      // DO is its own kind: the write policy does not name it.
      const err = await refusal(c.query("DO $$BEGIN PERFORM 1; END$$"));
      expect(err.code).toBe("42501");
    } finally {
      await c.end();
    }
  });

  it("under intent migrate the DDL goes through on the lease a human approved", async () => {
    const migrator = await h.checkout(RESOURCE, { intent: "migrate", approver: "alice" });
    const c = await connect(migrator);
    try {
      await c.query("CREATE TABLE ps_migrated (a int)");
      await c.query("DROP TABLE ps_migrated");
      // Rows are not the migration's business: no policy lets intent migrate select.
      const err = await refusal(c.query("SELECT * FROM ps_orders"));
      expect(err.code).toBe("42501");
    } finally {
      await c.end();
    }
  });

  it("a resource without statementPolicy is not judged (existing behaviour)", async () => {
    const l = await h.checkout(PLAIN, { intent: "read" });
    const c = await connect(l, PLAIN);
    try {
      await c.query("CREATE TEMP TABLE t_plain (a int)");
      await c.query("DROP TABLE t_plain");
      await c.query("SELEC 1").catch((e: { code?: string }) => expect(e.code).toBe("42601"));
    } finally {
      await c.end();
    }
  });

  it("a listener that cannot apply statement policy (LDAP) does not start", async () => {
    const m = await h.manager({ policy: h.node.policy });
    const stored = await h.node.catalog.get(PLAIN);
    if (!stored) throw new Error("no registration");
    const ldapReg = {
      ...stored,
      name: "px-ldap-stmt",
      adapter: "ldap",
      proxy: { port: 0, statementPolicy: true },
    };
    const report = await m.sync([ldapReg]);
    expect(report.failed).toEqual([
      { resource: "px-ldap-stmt", error: "statement policy is not available for ldap listeners" },
    ]);
    expect(m.endpointFor("px-ldap-stmt")).toBeUndefined();
  });

  it("no token or password appears in the logs or the audit trail", async () => {
    await h.expectNoSecretLeaked();
  });
});
