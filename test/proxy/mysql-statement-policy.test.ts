import { createHash, randomBytes } from "node:crypto";
import {
  type Connection,
  type ConnectionOptions,
  createConnection,
  type RowDataPacket,
} from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { mariadbRoot } from "../support/mariadb.js";
import { waitFor } from "../support/wait-for.js";
import { type Checkout, listenerPort, type ProxyHarness, startProxyHarness } from "./harness.js";
import { dropMariadbSetup, mysqlRegistrationBase, prepareMariadb } from "./mysql-setup.js";
import { run, toolEnv } from "./processes.js";
import { refusalOf } from "../support/refusal.js";

const RESOURCE = "px-my-stmt";
const PLAIN = "px-my-plain";
const tag = randomBytes(3).toString("hex");
const ACCOUNTS = [1, 2, 3, 4, 5].map((i) => `pms${tag}_${i}`);
const PLAIN_ACCOUNTS = [`pms${tag}_p1`, `pms${tag}_p2`, `pms${tag}_p3`];
const ADMIN = `pms${tag}_admin`;
const DB = `pms${tag}_db`;

/** The PostgreSQL test's worked policy, on MySQL: read selects two tables, write may change rows and the schema. */
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
  ["my_orders", "my_customers"].containsAll(context.tables)
};

@id("write-dml-ddl")
permit (principal, action == Action::"statement", resource)
when {
  context.intent == "write" &&
  ["select", "insert", "update", "delete", "ddl", "set"].contains(context.statement_kind)
};
`;

let h: ProxyHarness;
let proxy: ProxyManager;
let port = 0;
let reader: Checkout;

interface Row extends RowDataPacket {
  n: number;
}

async function viaProxy(l: Checkout, opts: Partial<ConnectionOptions> = {}): Promise<Connection> {
  const c = await createConnection({
    host: "127.0.0.1",
    port,
    user: l.leaseId,
    password: l.token,
    database: DB,
    ssl: { rejectUnauthorized: false },
    ...opts,
  });
  c.on("error", () => undefined);
  return c;
}

type MysqlError = { errno?: number; sqlState?: string; message: string };

const refusal = (p: Promise<unknown>) => refusalOf<MysqlError>(p);

async function orderCount(c: Connection): Promise<number> {
  const [rows] = await c.query<Row[]>("SELECT COUNT(*) AS n FROM my_orders");
  return Number(rows[0]?.n);
}

async function rootOrderCount(): Promise<number> {
  const root = await mariadbRoot();
  try {
    const [rows] = await root.query<Row[]>(`SELECT COUNT(*) AS n FROM ${DB}.my_orders`);
    return Number(rows[0]?.n);
  } finally {
    await root.end();
  }
}

const digest = (text: string) => `sha256:${createHash("sha256").update(text, "utf8").digest("hex")}`;

async function statementDecisions(): Promise<Array<Record<string, unknown>>> {
  return (await h.auditRecords()).filter((r) => r.event === "decision" && r.scope === "statement");
}

function cli(l: Checkout, args: readonly string[], input = "") {
  return run(
    "mariadb",
    ["--no-defaults", "-A", "-h", "127.0.0.1", "-P", String(port), "-u", l.leaseId, "-N", "-B", DB, ...args],
    toolEnv({ MYSQL_PWD: l.token }),
    input,
  );
}

beforeAll(async () => {
  h = await startProxyHarness({ name: "proxy-mysql-stmt", policy: POLICY });
  const root = await mariadbRoot();
  let adminPassword: string;
  try {
    adminPassword = await prepareMariadb(h, root, {
      accounts: [...ACCOUNTS, ...PLAIN_ACCOUNTS],
      admin: ADMIN,
      db: DB,
    });
    await root.query(`CREATE TABLE ${DB}.my_orders (id INT PRIMARY KEY, total INT)`);
    await root.query(`CREATE TABLE ${DB}.my_customers (id INT PRIMARY KEY, name VARCHAR(40))`);
    await root.query(`CREATE TABLE ${DB}.my_secrets (id INT)`);
    await root.query(`INSERT INTO ${DB}.my_orders VALUES (1, 10), (2, 20), (3, 30), (4, 40), (5, 50)`);
  } finally {
    await root.end();
  }
  const base = mysqlRegistrationBase(ADMIN, adminPassword);
  await h.register({
    ...base,
    name: RESOURCE,
    accounts: ACCOUNTS,
    proxy: { port: 0, statementPolicy: true },
  });
  await h.register({
    ...base,
    name: PLAIN,
    accounts: PLAIN_ACCOUNTS,
    proxy: { port: 0, databases: [DB] },
  });
  proxy = await h.manager({ policy: h.node.policy, auditStatements: "digest" });
  port = listenerPort(proxy, RESOURCE);
  reader = await h.checkout(RESOURCE, { intent: "read" });
}, 180_000);

afterAll(async () => {
  await h?.close();
  await dropMariadbSetup({ accounts: [...ACCOUNTS, ...PLAIN_ACCOUNTS], admin: ADMIN, db: DB });
});

describe("statement policy on the MySQL listener", () => {
  it("under intent read, SELECT from the named tables works, as text and as prepared statements", async () => {
    const c = await viaProxy(reader);
    try {
      const [rows] = await c.query<RowDataPacket[]>(
        "SELECT o.id, o.total FROM my_orders o LEFT JOIN my_customers c ON c.id = o.id",
      );
      expect(rows).toHaveLength(5);
      for (const id of [2, 3]) {
        const [p] = await c.execute<RowDataPacket[]>("SELECT total FROM my_orders WHERE id = ?", [id]);
        expect(p).toEqual([{ total: id * 10 }]);
      }
    } finally {
      await c.end();
    }
  });

  it("refuses DROP, DELETE, a second statement, LOAD DATA, INTO OUTFILE, other tables and dynamic SQL with 1142; the session goes on", async () => {
    const before = (await statementDecisions()).length;
    const c = await viaProxy(reader, { multipleStatements: true });
    const refused: Array<{ text: string; says: string }> = [
      { text: "DROP TABLE my_orders", says: "(ddl on my_orders)" },
      { text: "DELETE FROM my_orders", says: "(delete on my_orders)" },
      {
        text: "SELECT 1; DROP TABLE my_orders",
        says: "(ddl on my_orders, in a message of several statements)",
      },
      { text: "LOAD DATA INFILE '/etc/hostname' INTO TABLE my_orders", says: "(copy on my_orders)" },
      { text: "SELECT * FROM my_orders INTO OUTFILE '/tmp/leasehold-out'", says: "(copy on my_orders)" },
      { text: "SELECT * FROM my_secrets", says: "(select on my_secrets)" },
      { text: `SELECT * FROM ${DB}.my_orders`, says: `(select on ${DB}.my_orders)` },
      { text: "PREPARE s FROM 'DROP TABLE my_orders'", says: "(ddl on my_orders)" },
      { text: "EXECUTE s", says: "(other on no table)" },
      { text: "PREPARE s FROM @q", says: "the grammar cannot parse it" },
      { text: "CALL my_proc()", says: "(call on no table)" },
      { text: "DO (SELECT COUNT(*) FROM my_secrets)", says: "(do on my_secrets)" },
      { text: "HANDLER my_secrets OPEN", says: "(other on my_secrets)" },
      { text: "SELEC 1", says: "the grammar cannot parse it" },
    ];
    try {
      for (const r of refused) {
        const err = await refusal(c.query(r.text));
        expect(err.errno, r.text).toBe(1142);
        expect(err.sqlState, r.text).toBe("42000");
        expect(err.message, r.text).toContain("leasehold: statement refused by policy");
        expect(err.message, r.text).toContain(r.says);
        // The session goes on.
        expect(await orderCount(c)).toBe(5);
      }
      // DDL hidden in a prepared statement (COM_STMT_PREPARE): refused at prepare, never prepared.
      const e1 = await refusal(c.execute("ALTER TABLE my_orders DROP COLUMN total"));
      expect(e1.errno).toBe(1142);
      expect(e1.message).toContain("(ddl on my_orders)");
      for (const id of [1, 2]) {
        const e2 = await refusal(c.execute("DELETE FROM my_orders WHERE id = ?", [id]));
        expect(e2.errno).toBe(1142);
      }
      expect(await orderCount(c)).toBe(5);
    } finally {
      await c.end();
    }
    expect(await rootOrderCount()).toBe(5);
    const root = await mariadbRoot();
    try {
      const [cols] = await root.query<RowDataPacket[]>(
        "SELECT column_name AS c FROM information_schema.columns WHERE table_schema = ? AND table_name = 'my_orders' ORDER BY 1",
        [DB],
      );
      expect(cols.map((r) => r.c)).toEqual(["id", "total"]);
    } finally {
      await root.end();
    }
    const records = await waitFor("the refusals' decision records", async () => {
      const all = (await statementDecisions()).slice(before);
      return all.length >= refused.length + 3 ? all : undefined;
    });
    for (const r of refused) {
      expect(
        records.find((x) => x.digest === digest(r.text)),
        r.text,
      ).toMatchObject({
        event: "decision",
        scope: "statement",
        decision: "deny",
        tool: "mysql",
        lease_id: reader.leaseId,
        resource: RESOURCE,
      });
    }
    const drop = records.find((x) => x.digest === digest("DROP TABLE my_orders"));
    expect(drop?.reason).toContain("ddl on my_orders");
    expect(drop?.policies).toEqual([]);
    const raw = JSON.stringify(records);
    for (const r of refused) expect(raw).not.toContain(r.text);
    expect(raw).not.toContain("DROP COLUMN");
  });

  it("text the server would read otherwise than the grammar is refused (executable comments, `--1`, sql_mode and character set changes)", async () => {
    const c = await viaProxy(reader, { multipleStatements: true });
    const misread: Array<{ text: string; says: string }> = [
      {
        text: "SELECT 1 /*!, (SELECT COUNT(*) FROM my_secrets) */ FROM my_orders",
        says: "executable comment",
      },
      { text: "SELECT 1 /*M!100000 , 2 */ FROM my_orders", says: "executable comment" },
      { text: "SELECT 1 --1; DROP TABLE my_orders", says: "`--` not followed by a space" },
      { text: "SET sql_mode = 'NO_BACKSLASH_ESCAPES'", says: "it changes how the server reads SQL" },
      { text: "SET @@session.sql_mode = 'ANSI_QUOTES'", says: "it changes how the server reads SQL" },
      { text: "SET NAMES sjis", says: "it changes how the server reads SQL" },
      { text: "SET character_set_client = 'gbk'", says: "it changes how the server reads SQL" },
    ];
    try {
      for (const m of misread) {
        const err = await refusal(c.query(m.text));
        expect(err.errno, m.text).toBe(1142);
        expect(err.message, m.text).toContain(m.says);
      }
      // A `#` comment runs to a newline (not a carriage return), as the server reads it.
      const [hash] = await c.query<RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM my_orders #x\r; DROP TABLE my_orders",
      );
      expect(hash).toEqual([{ n: 5 }]);
      // A backslash escape is read as the server reads it: the string hides nothing.
      const [rows] = await c.query<RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM my_orders WHERE 'a\\'; DROP TABLE my_orders; -- ' <> ''",
      );
      expect(rows).toEqual([{ n: 5 }]);
      const [mode] = await c.query<RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM my_orders WHERE @@sql_mode NOT LIKE '%NO_BACKSLASH%'",
      );
      expect(mode).toEqual([{ n: 5 }]);
    } finally {
      await c.end();
    }
    expect(await rootOrderCount()).toBe(5);
  });

  it("in a session whose character set could hide a backslash (sjis), every statement is refused", async () => {
    const c = await viaProxy(reader, { charset: "SJIS_JAPANESE_CI" });
    try {
      const err = await refusal(c.query("SELECT COUNT(*) AS n FROM my_orders"));
      expect(err.errno).toBe(1142);
      expect(err.message).toContain("the session reads SQL otherwise than the grammar");
    } finally {
      await c.end();
    }
    const records = await waitFor("the refusal's record", async () => {
      const all = (await statementDecisions()).filter((r) =>
        String(r.reason).includes("character set (sjis)"),
      );
      return all.length > 0 ? all : undefined;
    });
    expect(records[0]).toMatchObject({ decision: "deny", lease_id: reader.leaseId });
  });

  it("the mariadb CLI gets ERROR 1142 for a refused statement and goes on with the next", async () => {
    const r = await cli(reader, ["--force"], "DROP TABLE my_orders;\nSELECT COUNT(*) FROM my_orders;\n");
    expect(r.stderr).toMatch(
      /ERROR 1142 \(42000\).*leasehold: statement refused by policy \(ddl on my_orders\)/,
    );
    expect(r.stdout.trim()).toBe("5");
    expect(await rootOrderCount()).toBe(5);
  });

  it("under intent write the DDL goes through; under migrate only with a human's approval", async () => {
    const writer = await h.checkout(RESOURCE, { intent: "write" });
    const c = await viaProxy(writer);
    try {
      await c.query("CREATE TABLE my_scratch (a INT)");
      await c.execute("INSERT INTO my_scratch VALUES (?)", [7]);
      const [rows] = await c.query<RowDataPacket[]>("SELECT a FROM my_scratch");
      expect(rows).toEqual([{ a: 7 }]);
      await c.execute("DROP TABLE my_scratch");
      // LOAD DATA is copy: the write policy does not name it.
      const err = await refusal(c.query("LOAD DATA INFILE '/etc/hostname' INTO TABLE my_orders"));
      expect(err.errno).toBe(1142);
    } finally {
      await c.end();
    }
    const migrator = await h.checkout(RESOURCE, { intent: "migrate", approver: "alice" });
    const m = await viaProxy(migrator);
    try {
      await m.query("CREATE TABLE my_migrated (a INT)");
      await m.query("DROP TABLE my_migrated");
      const err = await refusal(m.query("SELECT * FROM my_orders"));
      expect(err.errno).toBe(1142);
    } finally {
      await m.end();
    }
  });

  it("a resource without statementPolicy is not judged", async () => {
    const l = await h.checkout(PLAIN, { intent: "read" });
    const c = await viaProxy(l, { port: listenerPort(proxy, PLAIN) });
    try {
      await c.query("CREATE TEMPORARY TABLE t_plain (a INT)");
      await c.query("DROP TEMPORARY TABLE t_plain");
      const err = await refusal(c.query("SELEC 1"));
      expect(err.errno).toBe(1064);
    } finally {
      await c.end();
    }
  });

  it("proxy.databases pins the session's database: the handshake's, COM_INIT_DB and USE (1044)", async () => {
    const l = await h.checkout(PLAIN, { intent: "read" });
    const plainPort = listenerPort(proxy, PLAIN);
    const login = await refusal(viaProxy(l, { port: plainPort, database: "mysql" }));
    expect(login.errno).toBe(1044);
    expect(login.message).toContain("to database 'mysql'");
    const c = await viaProxy(l, { port: plainPort, multipleStatements: true });
    try {
      for (const sql of ["USE mysql", "SELECT 1; USE `mysql`", "/* x */ USE information_schema"]) {
        const err = await refusal(c.query(sql));
        expect(err.errno, sql).toBe(1044);
        expect(err.sqlState, sql).toBe("42000");
      }
      await c.query(`USE ${DB}`);
      const [rows] = await c.query<RowDataPacket[]>("SELECT DATABASE() AS d");
      expect(rows).toEqual([{ d: DB }]);
    } finally {
      await c.end();
    }
    // The mariadb CLI's `use` is COM_INIT_DB.
    const r = await run(
      "mariadb",
      [
        "--no-defaults",
        "-A",
        "--force",
        "-h",
        "127.0.0.1",
        "-P",
        String(plainPort),
        "-u",
        l.leaseId,
        "-N",
        "-B",
        DB,
      ],
      toolEnv({ MYSQL_PWD: l.token }),
      "use mysql\nSELECT DATABASE();\n",
    );
    expect(r.stderr).toContain("ERROR 1044 (42000)");
    expect(r.stdout.trim()).toBe(DB);
  });

  it("KILL QUERY of the id the client was given reaches its own backend, and no other session's", async () => {
    const l = await h.checkout(PLAIN, { intent: "read" });
    const plainPort = listenerPort(proxy, PLAIN);
    const busy = await viaProxy(l, { port: plainPort });
    const killer = await viaProxy(l, { port: plainPort });
    const root = await mariadbRoot();
    try {
      const [own] = await busy.query<RowDataPacket[]>("SELECT CONNECTION_ID() AS id");
      // The client knows the listener's id (its greeting), not the server's thread id.
      expect(busy.threadId).not.toBe(own[0]?.id);
      const sleeping = busy.query("SELECT SLEEP(3600) AS s").then(
        ([rows]) => (rows as RowDataPacket[])[0]?.s,
        (e: MysqlError) => e.errno,
      );
      await waitFor("the sleep to run", async () => {
        const [rows] = await root.query<Row[]>(
          "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'SELECT SLEEP%'",
          [own[0]?.id],
        );
        return Number(rows[0]?.n) === 1;
      });
      await killer.query(`KILL QUERY ${busy.threadId}`);
      // SLEEP() interrupted by KILL QUERY returns 1 (or the server reports 1317).
      expect([1, 1317]).toContain(await sleeping);
      // Another session's id (root's) is not this lease's: refused as the server refuses an unknown id.
      const [rootId] = await root.query<RowDataPacket[]>("SELECT CONNECTION_ID() AS id");
      const err = await refusal(killer.query(`KILL ${rootId[0]?.id}`));
      expect(err.errno).toBe(1094);
      expect((await root.query("SELECT 1 AS one"))[0]).toEqual([{ one: 1 }]);
    } finally {
      await root.end();
      await busy.end().catch(() => undefined);
      await killer.end();
    }
  });

  it("a statement still running when the lease ends is killed on the server", async () => {
    const l = await h.checkout(RESOURCE, { intent: "read" });
    // A wait for a row lock root holds: InnoDB does not look at the client while it waits
    // (SLEEP() and GET_LOCK() do), so only a KILL ends it before innodb_lock_wait_timeout.
    const root = await mariadbRoot();
    const c = await viaProxy(l);
    try {
      await root.query("START TRANSACTION");
      await root.query(`SELECT id FROM ${DB}.my_orders WHERE id = 1 FOR UPDATE`);
      const waiting = c.query("SELECT id FROM my_orders WHERE id = 1 FOR UPDATE").then(
        () => "finished",
        () => "failed",
      );
      const running = async () => {
        const [rows] = await root.query<Row[]>(
          "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE '%FOR UPDATE'",
          [l.account],
        );
        return Number(rows[0]?.n);
      };
      await waitFor("the waiting statement", async () => (await running()) === 1);
      // What the listener does when the lease-end stream says the lease ended (without the
      // rotation that follows a real end: it may change the password before the KILL logs in,
      // a race docs/security.md names).
      expect(proxy.endLease(l.leaseId, "the lease was revoked")).toBe(1);
      expect(await waiting).toBe("failed");
      // The adapter's termination is off here: only the listener's KILL ends the wait before
      // innodb_lock_wait_timeout (50 s by default; this wait gives up well before).
      await waitFor("the server to end the statement", async () => (await running()) === 0, {
        timeoutMs: 20_000,
      });
    } finally {
      await root.query("ROLLBACK").catch(() => undefined);
      await root.end();
    }
  });

  it("no token or password appears in the logs or the audit trail", async () => {
    await h.expectNoSecretLeaked();
  });
});
