import { randomBytes } from "node:crypto";
import { type Connection, createConnection, type RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdapterContext, AdapterError } from "../../adapters/adapter.js";
import {
  alterUserPassword,
  checkMysqlAccountName,
  hasNoBackslashEscapes,
  type MysqlTarget,
  mysqlAdapter,
  mysqlConfig,
  parseAccount,
  quoteIdentifier,
  quoteString,
  setOwnPassword,
} from "../../adapters/mysql/index.js";
import { freePort } from "../support/free-port.js";
import { createMariadbAccount, dropMariadbAccount, localMariadb, mariadbRoot } from "../support/mariadb.js";
import { adminSessionChecks } from "./admin-session-checks.js";
import { adapterConformance, testPassword } from "./conformance.js";
import { withSilentServer } from "../support/silent-server.js";

const target: MysqlTarget = mysqlConfig.parse({ host: localMariadb.host, port: localMariadb.port });
const admin = { username: localMariadb.user, password: localMariadb.password };

adapterConformance({
  name: "mysql",
  adapter: mysqlAdapter,
  async setup() {
    const root = await mariadbRoot();
    const closedPort = await freePort();
    return {
      target,
      admin,
      createAccount: (name, password) => createMariadbAccount(root, name, password),
      dropAccount: (name) => dropMariadbAccount(root, name),
      unreachableTarget: mysqlConfig.parse({ host: "127.0.0.1", port: closedPort }),
      unreachableAddress: `127.0.0.1:${closedPort}`,
      targetVia: (host, port) => mysqlConfig.parse({ host, port: port ?? target.port }),
      async openSession(name, password) {
        const conn = await createConnection({
          host: target.host,
          port: target.port,
          user: parseAccount(name).user,
          password,
        });
        conn.on("error", () => undefined);
        return {
          async alive() {
            try {
              await conn.query("SELECT 1");
              return true;
            } catch {
              return false;
            }
          },
          close: async () => conn.destroy(),
        };
      },
      teardown: () => root.end(),
    };
  },
});

interface IdRow extends RowDataPacket {
  id: number | string;
}

adminSessionChecks({
  name: "mysql",
  adapter: mysqlAdapter,
  selfRotation: true,
  async setup() {
    const root = await mariadbRoot();
    const username = `lhm${randomBytes(3).toString("hex")}_admin`;
    await createMariadbAccount(root, username, testPassword());
    await root.query("GRANT CREATE USER ON *.* TO ?@'%'", [username]);
    // Quoted by mysql2's client-side escaping, for the sql_mode mariadbRoot sets.
    const setAdminPassword = async (pw: string) => {
      await root.query("ALTER USER ?@'%' IDENTIFIED BY ?", [username, pw]);
    };
    const password = testPassword();
    await setAdminPassword(password);
    return {
      target,
      viaRelay: (port) => mysqlConfig.parse({ host: "127.0.0.1", port }),
      serverPort: target.port,
      admin: { username, password },
      createAccount: (name, pw) => createMariadbAccount(root, name, pw),
      dropAccount: (name) => dropMariadbAccount(root, name),
      async adminSessionIds() {
        const [rows] = await root.execute<IdRow[]>(
          "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ? ORDER BY ID",
          [username],
        );
        return rows.map((r) => String(r.id));
      },
      async killSession(id) {
        await root.query(`KILL CONNECTION ${Number(id)}`);
      },
      setAdminPassword,
      async teardown() {
        await dropMariadbAccount(root, username).catch(() => undefined);
        await root.end();
      },
    };
  },
});

describe("mysql adapter specifics", () => {
  const run = randomBytes(3).toString("hex");
  const accounts: string[] = [];
  const ctx = (withAdmin = true): AdapterContext => ({
    admin: withAdmin ? admin : undefined,
    log: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
    timeoutMs: 10_000,
  });
  let root: Connection;

  /** Printable ASCII that means something else when quoted for the wrong sql_mode. */
  const tricky = (): string => `${testPassword().slice(0, 20)}\\'"\\\\n\\0%_\\`;

  async function account(name: string, password: string): Promise<string> {
    await createMariadbAccount(root, name, password);
    accounts.push(name);
    return name;
  }
  async function isValid(name: string, password: string): Promise<boolean> {
    return (await mysqlAdapter.verify(target, { username: name, password }, ctx())).valid;
  }
  const deadline = () => Date.now() + 10_000;

  beforeAll(async () => {
    root = await mariadbRoot();
  });
  afterAll(async () => {
    for (const name of accounts) await dropMariadbAccount(root, name).catch(() => undefined);
    await root?.end();
  });

  for (const nbe of [false, true]) {
    const mode = nbe ? "with NO_BACKSLASH_ESCAPES" : "without NO_BACKSLASH_ESCAPES";

    it(`ALTER USER sets exactly the password ${mode}`, async () => {
      const name = await account(`lhm${run}_alter_${nbe ? "nbe" : "std"}`, testPassword());
      await root.query(
        `SET SESSION sql_mode = '${nbe ? "STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES" : "STRICT_TRANS_TABLES"}'`,
      );
      try {
        const next = tricky();
        await alterUserPassword(root, parseAccount(name), next, deadline());
        expect(await isValid(name, next)).toBe(true);
      } finally {
        await root.query("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'");
      }
    });

    it(`SET PASSWORD (self) sets exactly the password ${mode}`, async () => {
      const first = testPassword();
      const name = await account(`lhm${run}_self_${nbe ? "nbe" : "std"}`, first);
      const conn = await createConnection({
        host: target.host,
        port: target.port,
        user: name,
        password: first,
      });
      try {
        await conn.query(`SET SESSION sql_mode = '${nbe ? "NO_BACKSLASH_ESCAPES" : ""}'`);
        const next = tricky();
        await setOwnPassword(conn, next, deadline());
        expect(await isValid(name, next)).toBe(true);
        expect(await isValid(name, first)).toBe(false);
      } finally {
        await conn.end();
      }
    });
  }

  it("quoting for the wrong sql_mode would set another password (so the tests above can fail)", async () => {
    const name = await account(`lhm${run}_wrongmode`, testPassword());
    await root.query("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'");
    try {
      // Backslashes only: a quote escaped for the wrong mode would end the literal early instead.
      const next = `${testPassword().slice(0, 20)}\\n\\\\x`;
      const q = parseAccount(name);
      await root.query(
        `ALTER USER ${quoteIdentifier(q.user)}@${quoteIdentifier(q.host)} IDENTIFIED BY ${quoteString(next, "")}`,
      );
      expect(await isValid(name, next)).toBe(false);
    } finally {
      await root.query("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'");
    }
  });

  it("quoteString and hasNoBackslashEscapes follow the mode", () => {
    expect(quoteString("a'b\\c", "STRICT_TRANS_TABLES")).toBe("'a\\'b\\\\c'");
    expect(quoteString("a'b\\c", "ANSI_QUOTES,NO_BACKSLASH_ESCAPES")).toBe("'a''b\\c'");
    expect(hasNoBackslashEscapes("no_backslash_escapes")).toBe(true);
    expect(hasNoBackslashEscapes("STRICT_TRANS_TABLES")).toBe(false);
    expect(quoteIdentifier("a`b")).toBe("`a``b`");
  });

  it("an account given as user@host is that entry exactly, not another entry of the user", async () => {
    const user = `lhm${run}_hosts`;
    const wide = testPassword();
    const narrow = testPassword();
    await account(`${user}@%`, wide);
    await account(`${user}@127.0.0.1`, narrow);
    // From 127.0.0.1 the server matches the more specific entry.
    expect(await isValid(`${user}@127.0.0.1`, narrow)).toBe(true);
    const verdict = await mysqlAdapter.verify(target, { username: `${user}@%`, password: narrow }, ctx());
    expect(verdict.valid).toBe(false);
    expect(verdict.valid ? "" : verdict.reason).toContain("another account entry");
    // Rotating the narrow entry changes only it.
    const next = testPassword();
    await mysqlAdapter.rotate(target, { account: `${user}@127.0.0.1`, next }, ctx());
    expect(await isValid(`${user}@127.0.0.1`, next)).toBe(true);
    const [rows] = await root.execute<Array<{ n: number } & RowDataPacket>>(
      "SELECT COUNT(*) AS n FROM mysql.user WHERE User = ? AND Host = '%' AND authentication_string = CONCAT('*', UPPER(SHA1(UNHEX(SHA1(?)))))",
      [user, wide],
    );
    expect(Number(rows[0]?.n)).toBe(1);
  });

  it("checkAccountName: user or user@host, refusing what the server would not keep exactly", () => {
    expect(parseAccount("app")).toEqual({ user: "app", host: "%" });
    expect(parseAccount("a@b@10.0.0.%")).toEqual({ user: "a@b", host: "10.0.0.%" });
    expect(checkMysqlAccountName("app@10.0.0.0/255.255.255.0")).toBeNull();
    expect(checkMysqlAccountName("app@::1")).toBeNull();
    expect(checkMysqlAccountName("o'brien`\\ ü")).toBeNull();
    for (const bad of [
      "",
      "@%",
      "app@",
      "app@'%",
      "a\0b",
      "trailing ",
      "emoji😀",
      "x".repeat(81),
      `a@${"h".repeat(256)}`,
    ]) {
      expect(checkMysqlAccountName(bad), JSON.stringify(bad)).not.toBeNull();
    }
  });

  it("the config schema applies defaults and refuses unknown keys", () => {
    expect(mysqlConfig.parse({ host: "db" })).toEqual({ host: "db", port: 3306 });
    expect(mysqlConfig.safeParse({ host: "db", database: "x" }).success).toBe(false);
    expect(mysqlConfig.safeParse({ host: "db", ssl: true }).success).toBe(true);
    expect(mysqlConfig.safeParse({ host: "db", ssl: { ca: "PEM", verify: 1 } }).success).toBe(false);
  });

  it("refuses new passwords outside the constraints or printable ASCII, before connecting", async () => {
    const closed = mysqlConfig.parse({ host: "127.0.0.1", port: await freePort() });
    for (const next of ["short", "x".repeat(81), `${testPassword()}é`, `${testPassword()}\0`]) {
      const err = await mysqlAdapter.rotate(closed, { account: "any", next }, ctx()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AdapterError);
      expect((err as AdapterError).code).toBe("invalid");
    }
  });

  it("a server that never answers gives a retryable timeout", async () => {
    await withSilentServer(async (port) => {
      const err = await mysqlAdapter
        .verify(
          mysqlConfig.parse({ host: "127.0.0.1", port }),
          { username: "x", password: "y" },
          {
            ...ctx(),
            timeoutMs: 300,
          },
        )
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AdapterError);
      expect((err as AdapterError).code).toBe("timeout");
      expect((err as AdapterError).retryable).toBe(true);
    });
  });

  it("terminateSessions needs an admin credential", async () => {
    const err = await mysqlAdapter.terminateSessions?.(target, "anyone", ctx(false)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe("privilege");
  });
});
