import { randomBytes } from "node:crypto";
import type { Connection } from "mysql2/promise";
import { createMariadbAccount, dropMariadbAccounts, mariadbRoot } from "../support/mariadb.js";
import type { ProxyHarness } from "./harness.js";

export interface MariadbSetup {
  /** Accounts made with fresh passwords nobody keeps: the registration rotates them. */
  readonly accounts: readonly string[];
  /** The accounts granted everything on `db` (all of them when absent). */
  readonly granted?: readonly string[];
  /** The registration's admin, allowed to create users. */
  readonly admin: string;
  readonly db: string;
}

/**
 * The MariaDB side of a proxied registration, on `root`: the accounts (their passwords among the
 * harness' secrets), the admin, the database and the grants on it. Returns the admin's password.
 */
export async function prepareMariadb(h: ProxyHarness, root: Connection, o: MariadbSetup): Promise<string> {
  const adminPassword = randomBytes(18).toString("base64url");
  h.secrets.push(adminPassword);
  for (const a of o.accounts) {
    const pw = randomBytes(18).toString("base64url");
    h.secrets.push(pw);
    await createMariadbAccount(root, a, pw);
  }
  await createMariadbAccount(root, o.admin, adminPassword);
  await root.query(`GRANT CREATE USER ON *.* TO '${o.admin}'@'%'`);
  await root.query(`CREATE DATABASE ${o.db}`);
  for (const a of o.granted ?? o.accounts) await root.query(`GRANT ALL ON ${o.db}.* TO '${a}'@'%'`);
  return adminPassword;
}

/** Undoes `prepareMariadb`: drops the accounts, the admin and the database (whatever exists). */
export async function dropMariadbSetup(o: MariadbSetup): Promise<void> {
  await dropMariadbAccounts(...o.accounts, o.admin).catch(() => undefined);
  const root = await mariadbRoot();
  await root.query(`DROP DATABASE IF EXISTS ${o.db}`).catch(() => undefined);
  await root.end();
}

/** What every proxied MySQL registration of these tests shares: the local server, the admin, no session termination. */
export function mysqlRegistrationBase(admin: string, adminPassword: string) {
  return {
    adapter: "mysql",
    connection: { host: "127.0.0.1", port: 3306 },
    admin: { username: admin, password: adminPassword },
    rotation: { terminateSessions: false },
  };
}
