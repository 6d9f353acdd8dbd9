import type { Connection, RowDataPacket } from "mysql2/promise";
import type { AdapterLogger, Verdict } from "../adapter.js";
import { AdapterError } from "../adapter.js";
import { type MysqlAccount, parseAccount } from "./account.js";
import { runSelect } from "./connection.js";
import { serverErrno, toAdapterError } from "./errors.js";

/** Errors that mean "this admin may not read that": the check cannot tell, it does not fail. */
const NOT_READABLE = new Set([1044, 1142, 1143, 1146, 1227]);

interface WhoRow extends RowDataPacket {
  who: string;
}
interface CountRow extends RowDataPacket {
  n: number | string;
}
interface GrantRow extends RowDataPacket {
  granted: number | string;
  roles: number | string;
}

/** `'user'@'host'`, as the server writes accounts in its messages and in information_schema. */
export function grantee(account: MysqlAccount): string {
  return `'${account.user}'@'${account.host}'`;
}

/** Runs a query whose refusal for lack of privilege means "cannot tell": resolves undefined then. */
async function readIfAllowed<R extends RowDataPacket>(
  conn: Connection,
  sql: string,
  values: ReadonlyArray<string>,
  deadline: number,
): Promise<R[] | undefined> {
  try {
    return await runSelect<R>(conn, sql, values, deadline);
  } catch (err) {
    const errno = serverErrno(err);
    if (errno !== undefined && NOT_READABLE.has(errno)) return undefined;
    throw toAdapterError(err, "check account");
  }
}

const PRIVILEGE_QUERY = `SELECT
  (SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES
     WHERE GRANTEE = ? AND PRIVILEGE_TYPE IN ('CREATE USER', 'UPDATE'))
  + (SELECT COUNT(*) FROM information_schema.SCHEMA_PRIVILEGES
     WHERE GRANTEE = ? AND TABLE_SCHEMA = 'mysql' AND PRIVILEGE_TYPE = 'UPDATE')
  + (SELECT COUNT(*) FROM information_schema.TABLE_PRIVILEGES
     WHERE GRANTEE = ? AND TABLE_SCHEMA = 'mysql' AND PRIVILEGE_TYPE = 'UPDATE') AS granted,
  (SELECT COUNT(*) FROM information_schema.APPLICABLE_ROLES) AS roles`;

/**
 * As the admin logged in on `conn`: whether `account` exists (a row of mysql.user for exactly
 * that user and host) and whether the admin holds what ALTER USER on another account needs
 * (`CREATE USER`, or `UPDATE` on the mysql schema), as information_schema lists its own grants.
 * What the admin may not read is not held against the account: a least-privilege admin
 * (`CREATE USER` only) cannot read mysql.user, so its accounts' existence is checked at their
 * first rotation instead (logged); an admin that holds roles is not judged on its direct
 * grants. MySQL 8's SYSTEM_USER rule (such accounts only by SYSTEM_USER holders) is not checked.
 * @throws AdapterError for faults.
 */
export async function checkAccountAsAdmin(
  conn: Connection,
  account: MysqlAccount,
  deadline: number,
  log: AdapterLogger,
): Promise<Verdict> {
  const [who] = await runSelect<WhoRow>(conn, "SELECT CURRENT_USER() AS who", [], deadline).catch(
    (err: unknown) => {
      throw toAdapterError(err, "CURRENT_USER()");
    },
  );
  if (who === undefined) throw new AdapterError("failed", "mysql: CURRENT_USER() returned no row", false);
  const admin = parseAccount(who.who);
  const found = await readIfAllowed<CountRow>(
    conn,
    "SELECT COUNT(*) AS n FROM mysql.user WHERE User = ? AND LOWER(Host) = LOWER(?)",
    [account.user, account.host],
    deadline,
  );
  if (found === undefined) {
    log.info(
      { adapter: "mysql", account: `${account.user}@${account.host}` },
      "mysql: the admin may not read mysql.user; the account's existence is checked at its first rotation",
    );
  } else if (Number(found[0]?.n ?? 0) === 0) {
    return { valid: false, reason: `account ${grantee(account)} does not exist` };
  }
  if (admin.user === account.user && admin.host.toLowerCase() === account.host.toLowerCase()) {
    return { valid: true };
  }
  const g = grantee(admin);
  const [grants] = (await readIfAllowed<GrantRow>(conn, PRIVILEGE_QUERY, [g, g, g], deadline)) ?? [];
  if (grants !== undefined && Number(grants.granted) === 0 && Number(grants.roles) === 0) {
    return {
      valid: false,
      reason: `access denied: admin ${g} holds neither CREATE USER nor UPDATE on mysql.*, one of which ALTER USER ${grantee(account)} needs`,
    };
  }
  return { valid: true };
}
