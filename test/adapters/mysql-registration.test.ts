import { randomBytes } from "node:crypto";
import { type Connection, createConnection } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdapterContext, AdapterError, type Credential } from "../../adapters/adapter.js";
import { type MysqlTarget, mysqlAdapter, mysqlConfig } from "../../adapters/mysql/index.js";
import { createMariadbAccount, dropMariadbAccount, localMariadb, mariadbRoot } from "../support/mariadb.js";
import { testPassword } from "./conformance.js";

// checkAccount on the local MariaDB with admins of different grants; errors naming the server.

const target: MysqlTarget = mysqlConfig.parse({ host: localMariadb.host, port: localMariadb.port });
const run = randomBytes(3).toString("hex");
const accounts: string[] = [];
const lines: string[] = [];
let root: Connection;

beforeAll(async () => {
  root = await mariadbRoot();
});

afterAll(async () => {
  await mysqlAdapter.close?.();
  for (const a of accounts) await dropMariadbAccount(root, a).catch(() => undefined);
  await root?.end();
});

function ctx(admin: Credential | undefined): AdapterContext {
  const push = (o: object, m?: string) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`);
  return { admin, log: { debug: push, info: push, warn: push, error: push }, timeoutMs: 10_000 };
}

async function account(name: string, grant?: string): Promise<Credential> {
  const password = testPassword();
  await createMariadbAccount(root, name, password);
  accounts.push(name);
  if (grant !== undefined) await root.query(`GRANT ${grant} ON *.* TO ?@'%'`, [name]);
  return { username: name, password };
}

describe("mysql checkAccount", () => {
  let leastPrivilege: Credential;
  let noPrivilege: Credential;
  let app: Credential;

  beforeAll(async () => {
    leastPrivilege = await account(`lhq${run}_admin`, "CREATE USER");
    noPrivilege = await account(`lhq${run}_usage`);
    app = await account(`lhq${run}_app`);
  });

  it("root: an existing account passes; user@host is that entry exactly", async () => {
    const admin = { username: localMariadb.user, password: localMariadb.password };
    expect(await mysqlAdapter.checkAccount?.(target, app.username, ctx(admin))).toEqual({ valid: true });
    expect(await mysqlAdapter.checkAccount?.(target, `${app.username}@%`, ctx(admin))).toEqual({
      valid: true,
    });
    // The user exists as user@%, not as user@localhost: another account.
    expect(await mysqlAdapter.checkAccount?.(target, `${app.username}@localhost`, ctx(admin))).toEqual({
      valid: false,
      reason: `account '${app.username}'@'localhost' does not exist`,
    });
  });

  it("an admin holding neither CREATE USER nor UPDATE on mysql.* fails, in the server's terms", async () => {
    const verdict = await mysqlAdapter.checkAccount?.(target, app.username, ctx(noPrivilege));
    expect(verdict?.valid).toBe(false);
    const reason = verdict?.valid === false ? verdict.reason : "";
    expect(reason).toContain(`'${noPrivilege.username}'@'%'`);
    expect(reason).toMatch(/neither CREATE USER nor UPDATE on mysql\.\*/);
    // MariaDB agrees: that admin's ALTER USER is refused.
    const conn = await mysqlAdapterConnection(noPrivilege);
    try {
      await expect(conn.query("ALTER USER ?@'%' ACCOUNT UNLOCK", [app.username])).rejects.toThrow(/denied/i);
    } finally {
      await conn.end();
    }
  });

  it("the least-privilege admin (CREATE USER only) passes; it cannot read mysql.user, and the log says so", async () => {
    expect(await mysqlAdapter.checkAccount?.(target, app.username, ctx(leastPrivilege))).toEqual({
      valid: true,
    });
    const before = lines.length;
    // A missing account cannot be told from a present one by this admin: checked at the first rotation.
    expect(await mysqlAdapter.checkAccount?.(target, `lhq${run}_missing`, ctx(leastPrivilege))).toEqual({
      valid: true,
    });
    expect(lines.slice(before).join("\n")).toMatch(/may not read mysql\.user/);
  });

  it("no password reached the log", () => {
    const text = lines.join("\n");
    for (const secret of [leastPrivilege.password, noPrivilege.password, app.password]) {
      expect(text).not.toContain(secret);
    }
  });
});

async function mysqlAdapterConnection(cred: Credential): Promise<Connection> {
  const conn = await createConnection({
    host: target.host,
    port: target.port,
    user: cred.username,
    password: cred.password,
  });
  conn.on("error", () => undefined);
  return conn;
}

describe("mysql errors name the server and the cause", () => {
  it("TLS asked of a server without it: the handshake failure is said, the address named", async () => {
    const err = await mysqlAdapter
      .verify(
        mysqlConfig.parse({ host: "127.0.0.1", port: target.port, ssl: true }),
        { username: "x", password: testPassword() },
        ctx(undefined),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).message).toBe(
      `mysql 127.0.0.1:${target.port}: login as the account: TLS handshake failed: the server does not offer TLS (HANDSHAKE_NO_SSL_SUPPORT)`,
    );
  });

  it("a wrong admin password: authentication failed for that admin, at that address", async () => {
    const name = `lhq${run}_admin2`;
    await account(name, "CREATE USER");
    const wrong = testPassword();
    const err = await mysqlAdapter
      .checkAccount?.(target, name, ctx({ username: name, password: wrong }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    const e = err as AdapterError;
    expect(e.code).toBe("auth_failed");
    expect(e.message).toMatch(
      new RegExp(`^mysql 127\\.0\\.0\\.1:${target.port}: login as admin "${name}": authentication failed: `),
    );
    expect(e.message).not.toContain(wrong);
  });
});
