import { randomBytes } from "node:crypto";
import {
  type Connection,
  createConnection,
  type PreparedStatementInfo,
  type RowDataPacket,
} from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { mariadbRoot } from "../support/mariadb.js";
import { type Checkout, listenerPort, type ProxyHarness, startProxyHarness } from "./harness.js";
import { dropMariadbSetup, mysqlRegistrationBase, prepareMariadb } from "./mysql-setup.js";
import { refusalOf } from "../support/refusal.js";

/*
 * Statement ids under statement policy: a refused COM_STMT_PREPARE never reaches the server, so no
 * id exists for it there, and a COM_STMT_EXECUTE a client sends for the id the server would have
 * given it, or for one never prepared, executes nothing. MariaDB's "last prepared" id
 * (0xffffffff) after a refused prepare is refused by the listener itself.
 */

const GUARDED = "px-my-ids";
const PLAIN = "px-my-ids-plain";
const tag = randomBytes(3).toString("hex");
const ACCOUNTS = [`pmi${tag}_1`, `pmi${tag}_2`];
const PLAIN_ACCOUNTS = [`pmi${tag}_p1`];
const ADMIN = `pmi${tag}_admin`;
const DB = `pmi${tag}_db`;
const LAST_PREPARED = 0xffffffff;
/** ER_UNKNOWN_STMT_HANDLER: "Unknown prepared statement handler (N) given to mysqld_stmt_execute". */
const UNKNOWN_STATEMENT = 1243;

const POLICY = `@id("checkout")
permit (principal, action in [Action::"checkout", Action::"reveal", Action::"renew"], resource)
when { context.intent == "read" };

@id("read-selects-ids")
permit (principal, action == Action::"statement", resource)
when { context.intent == "read" && context.statement_kind == "select" && ["ids_t"].containsAll(context.tables) };
`;

let h: ProxyHarness;
let proxy: ProxyManager;

interface Row extends RowDataPacket {
  n: number;
}

async function viaProxy(resource: string, l: Checkout): Promise<Connection> {
  const c = await createConnection({
    host: "127.0.0.1",
    port: listenerPort(proxy, resource),
    user: l.leaseId,
    password: l.token,
    database: DB,
    ssl: { rejectUnauthorized: false },
  });
  c.on("error", () => undefined);
  return c;
}

/**
 * A raw COM_STMT_EXECUTE of statement `id` with `values`: mysql2 writes it from a handle of a
 * statement it did prepare (`like`, for the parameter count), given another id.
 */
function executeId(like: PreparedStatementInfo, id: number, values: unknown[]): Promise<unknown> {
  const inner = (
    like as unknown as { statement: { id: number; execute: (v: unknown[], cb: unknown) => void } }
  ).statement;
  const handle = Object.assign(Object.create(Object.getPrototypeOf(inner) as object) as typeof inner, inner, {
    id,
  });
  return new Promise((resolve, reject) => {
    handle.execute(values, (err: unknown, rows: unknown) => (err ? reject(err) : resolve(rows)));
  });
}

type MysqlError = { errno?: number; message: string };

const failure = (p: Promise<unknown>) => refusalOf<MysqlError>(p);

async function rootCount(table: string): Promise<number> {
  const root = await mariadbRoot();
  try {
    const [rows] = await root.query<Row[]>(`SELECT COUNT(*) AS n FROM ${DB}.${table}`);
    return Number(rows[0]?.n);
  } finally {
    await root.end();
  }
}

beforeAll(async () => {
  h = await startProxyHarness({ name: "proxy-mysql-ids", policy: POLICY });
  const root = await mariadbRoot();
  let adminPassword: string;
  try {
    adminPassword = await prepareMariadb(h, root, {
      accounts: [...ACCOUNTS, ...PLAIN_ACCOUNTS],
      admin: ADMIN,
      db: DB,
    });
    for (const t of ["ids_t", "ids_c"]) {
      await root.query(`CREATE TABLE ${DB}.${t} (id INT PRIMARY KEY, v INT)`);
      await root.query(`INSERT INTO ${DB}.${t} VALUES (1, 10), (2, 20), (3, 30)`);
    }
  } finally {
    await root.end();
  }
  const base = mysqlRegistrationBase(ADMIN, adminPassword);
  await h.register({ ...base, name: GUARDED, accounts: ACCOUNTS, proxy: { port: 0, statementPolicy: true } });
  await h.register({ ...base, name: PLAIN, accounts: PLAIN_ACCOUNTS, proxy: { port: 0 } });
  proxy = await h.manager({ policy: h.node.policy });
}, 180_000);

afterAll(async () => {
  await h?.close();
  await dropMariadbSetup({ accounts: [...ACCOUNTS, ...PLAIN_ACCOUNTS], admin: ADMIN, db: DB });
});

describe("prepared statement ids on the MySQL listener", () => {
  it("without statement policy, the id after a prepared SELECT is the DELETE prepared next, and executing it deletes", async () => {
    // What the guarded test below would see if a refused prepare reached the server.
    const c = await viaProxy(PLAIN, await h.checkout(PLAIN, { intent: "read" }));
    try {
      const select = await c.prepare("SELECT v FROM ids_c WHERE id = ?");
      await c.prepare("DELETE FROM ids_c WHERE id = ?");
      const id = (select as unknown as { statement: { id: number } }).statement.id;
      await executeId(select, id + 1, [1]);
      expect(await rootCount("ids_c")).toBe(2);
    } finally {
      await c.end();
    }
  });

  it("a COM_STMT_EXECUTE of the id a refused prepare would have had, or of one never prepared, executes nothing", async () => {
    const c = await viaProxy(GUARDED, await h.checkout(GUARDED, { intent: "read" }));
    try {
      const select = await c.prepare("SELECT v FROM ids_t WHERE id = ?");
      const id = (select as unknown as { statement: { id: number } }).statement.id;
      const refused = await failure(c.prepare("DELETE FROM ids_t WHERE id = ?"));
      expect(refused.errno).toBe(1142);
      expect(refused.message).toContain("leasehold: statement refused by policy");
      // The server never prepared it: the id it would have had is unknown there.
      const next = await failure(executeId(select, id + 1, [1]));
      expect(next.errno).toBe(UNKNOWN_STATEMENT);
      const never = await failure(executeId(select, id + 1000, [2]));
      expect(never.errno).toBe(UNKNOWN_STATEMENT);
      // "The last prepared" after a refused prepare: refused by the listener.
      const last = await failure(executeId(select, LAST_PREPARED, [3]));
      expect(last.errno).toBe(1142);
      expect(last.message).toContain("its prepare was refused");
      expect(await rootCount("ids_t")).toBe(3);
      // The session goes on, and its own statement still runs by its id.
      expect(await executeId(select, id, [2])).toEqual([{ v: 20 }]);
    } finally {
      await c.end();
    }
  });

  it("the last prepared id runs the last allowed prepare, and is refused again after another refused one", async () => {
    const c = await viaProxy(GUARDED, await h.checkout(GUARDED, { intent: "read" }));
    try {
      const select = await c.prepare("SELECT v FROM ids_t WHERE id = ? AND v > 0");
      expect(await executeId(select, LAST_PREPARED, [3])).toEqual([{ v: 30 }]);
      expect((await failure(c.prepare("DELETE FROM ids_t WHERE v = ?"))).errno).toBe(1142);
      expect((await failure(executeId(select, LAST_PREPARED, [30]))).errno).toBe(1142);
      expect(await rootCount("ids_t")).toBe(3);
    } finally {
      await c.end();
    }
  });
});
