import { type Connection, createConnection, type RowDataPacket } from "mysql2/promise";

/** The local MariaDB of the test machine (root, no password, over TCP). */
export const localMariadb = { host: "127.0.0.1", port: 3306, user: "root", password: "" } as const;

/** A root connection to the local MariaDB, with a known sql_mode (backslash escapes on). */
export async function mariadbRoot(): Promise<Connection> {
  const conn = await createConnection({
    ...localMariadb,
    multipleStatements: false,
    charset: "utf8mb4_general_ci",
  });
  conn.on("error", () => undefined);
  await conn.query("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'");
  return conn;
}

interface QuotedRow extends RowDataPacket {
  u: string;
  h: string;
  p: string;
}

/**
 * `'user'@'host'` and the password literal, quoted by the server's QUOTE() (right for the
 * session's default sql_mode set by mariadbRoot): independent of the adapter's quoting.
 * The account is `user` (host `%`) or `user@host`, split at the last `@`.
 */
async function serverQuoted(root: Connection, account: string, password = ""): Promise<QuotedRow> {
  const at = account.lastIndexOf("@");
  const [user, host] = at < 0 ? [account, "%"] : [account.slice(0, at), account.slice(at + 1)];
  const [rows] = await root.execute<QuotedRow[]>("SELECT QUOTE(?) AS u, QUOTE(?) AS h, QUOTE(?) AS p", [
    user,
    host,
    password,
  ]);
  const row = rows[0];
  if (row === undefined) throw new Error("QUOTE() returned no row");
  return row;
}

/** Creates a MariaDB account with this password (quoted server-side). */
export async function createMariadbAccount(
  root: Connection,
  account: string,
  password: string,
): Promise<void> {
  const q = await serverQuoted(root, account, password);
  await root.query(`CREATE USER ${q.u}@${q.h} IDENTIFIED BY ${q.p}`);
}

/** Drops a MariaDB account if it exists. */
export async function dropMariadbAccount(root: Connection, account: string): Promise<void> {
  const q = await serverQuoted(root, account);
  await root.query(`DROP USER IF EXISTS ${q.u}@${q.h}`);
}

/** Tries to log into the local MariaDB; true when the password is accepted, false when refused. */
export async function mariadbLogin(user: string, password: string): Promise<boolean> {
  try {
    const conn = await createConnection({ host: localMariadb.host, port: localMariadb.port, user, password });
    await conn.end();
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === "ER_ACCESS_DENIED_ERROR") return false;
    throw err;
  }
}

/**
 * Creates a leasable account and an admin that can rotate it: `CREATE USER`, and `PROCESS,
 * CONNECTION ADMIN` (to end the account's sessions) where the server knows those privileges.
 */
export async function createMariadbAccountAndAdmin(
  account: { name: string; password: string },
  admin: { name: string; password: string },
): Promise<void> {
  const root = await mariadbRoot();
  try {
    await createMariadbAccount(root, account.name, account.password);
    await createMariadbAccount(root, admin.name, admin.password);
    const q = await serverQuoted(root, admin.name);
    await root.query(`GRANT CREATE USER ON *.* TO ${q.u}@${q.h}`);
    await root.query(`GRANT PROCESS, CONNECTION ADMIN ON *.* TO ${q.u}@${q.h}`).catch(() => undefined);
  } finally {
    await root.end();
  }
}

/** Drops these MariaDB accounts (those that exist), on a root connection of its own. */
export async function dropMariadbAccounts(...accounts: string[]): Promise<void> {
  const root = await mariadbRoot();
  try {
    for (const account of accounts) await dropMariadbAccount(root, account);
  } finally {
    await root.end();
  }
}
