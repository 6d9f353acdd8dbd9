import type { Connection, RowDataPacket } from "mysql2/promise";
import type {
  Adapter,
  AdapterContext,
  Credential,
  PasswordChange,
  PasswordConstraints,
  Verdict,
} from "../adapter.js";
import { AdapterError } from "../adapter.js";
import { adminSessionKey, adminSessions } from "../admin-sessions.js";
import { checkMysqlAccountName, formatAccount, type MysqlAccount, parseAccount } from "./account.js";
import { accountIdentityOf, hostPort, namingTarget } from "../target-address.js";
import { mysqlAdminDriver } from "./admin-session.js";
import { checkAccountAsAdmin } from "./check-account.js";
import { type MysqlTarget, mysqlConfig } from "./config.js";
import { closeConnection, openConnection, remainingMs, runSelect, runStatement } from "./connection.js";
import { loginRefusedReason, serverErrno, toAdapterError } from "./errors.js";
import { checkPassword } from "./password-check.js";
import { alterUserPassword, sessionSqlMode, setOwnPassword } from "./password-statements.js";

/** Passwords are quoted for the session's sql_mode, so any printable ASCII character is fine. */
const constraints: PasswordConstraints = { minLength: 16, maxLength: 80, forbidden: "" };

const ER_NO_SUCH_THREAD = 1094;
const KILL_WAIT_CAP_MS = 5_000;
const KILL_POLL_MS = 25;

interface CurrentUserRow extends RowDataPacket {
  who: string;
}
interface IdRow extends RowDataPacket {
  id: number | string;
}

function where(target: MysqlTarget): { adapter: "mysql"; host: string; port: number } {
  return { adapter: "mysql", host: target.host, port: target.port };
}

function requireAccount(name: string): MysqlAccount {
  const problem = checkMysqlAccountName(name);
  if (problem !== null) throw new AdapterError("invalid", `mysql: ${problem}`, false);
  return parseAccount(name);
}

/** The account entry the server matched for this session (CURRENT_USER(), not USER()). */
async function currentAccount(conn: Connection, deadline: number): Promise<MysqlAccount> {
  const [row] = await runSelect<CurrentUserRow>(conn, "SELECT CURRENT_USER() AS who", [], deadline);
  if (row === undefined) throw new AdapterError("failed", "mysql: CURRENT_USER() returned no row", false);
  return parseAccount(row.who);
}

function sameAccount(a: MysqlAccount, b: MysqlAccount): boolean {
  // Host patterns compare case-insensitively on the server; user names exactly.
  return a.user === b.user && a.host.toLowerCase() === b.host.toLowerCase();
}

type AccountLogin = { readonly conn: Connection } | { readonly refused: string };

/**
 * Logs in with the account's user name and checks that the server matched this very
 * account entry: with `app@localhost` and `app@%` both present, the password of one
 * says nothing about the other.
 */
async function loginAsAccount(
  target: MysqlTarget,
  account: MysqlAccount,
  password: string,
  deadline: number,
): Promise<AccountLogin> {
  let conn: Connection;
  try {
    conn = await openConnection(target, { username: account.user, password }, deadline);
  } catch (err) {
    const refused = loginRefusedReason(err);
    if (refused !== undefined) return { refused };
    throw toAdapterError(err, "login as the account");
  }
  try {
    const matched = await currentAccount(conn, deadline);
    if (sameAccount(matched, account)) return { conn };
    await closeConnection(conn);
    return { refused: `the login matched another account entry (${formatAccount(matched)})` };
  } catch (err) {
    await closeConnection(conn);
    throw toAdapterError(err, "CURRENT_USER()");
  }
}

/** Self mode: log in with current, then previous; null when only `next` works (already done). */
async function loginForSelfRotation(
  target: MysqlTarget,
  account: MysqlAccount,
  change: PasswordChange,
  deadline: number,
  ctx: AdapterContext,
): Promise<Connection | null> {
  const tried = new Set<string>();
  for (const [label, password] of [
    ["current", change.current],
    ["previous", change.previous],
  ] as const) {
    if (password === undefined || tried.has(password)) continue;
    tried.add(password);
    const login = await loginAsAccount(target, account, password, deadline);
    if ("conn" in login) return login.conn;
    ctx.log.debug(
      { ...where(target), account: change.account, tried: label, reason: login.refused },
      "mysql: refused",
    );
  }
  const already = await loginAsAccount(target, account, change.next, deadline);
  if ("conn" in already) {
    await closeConnection(already.conn);
    return null;
  }
  throw new AdapterError(
    "auth_failed",
    "mysql: self rotation: neither the current nor the previous password logs in as the account",
    false,
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits (bounded) until the killed threads have left the process list, so callers may rely on it. */
async function waitUntilGone(conn: Connection, ids: readonly number[], deadline: number): Promise<void> {
  if (ids.length === 0) return;
  const until = Math.min(deadline - 250, Date.now() + KILL_WAIT_CAP_MS);
  const sql = `SELECT ID AS id FROM information_schema.PROCESSLIST WHERE ID IN (${ids.map(() => "?").join(",")})`;
  while (Date.now() < until) {
    const left = await runSelect<IdRow>(conn, sql, ids, deadline);
    if (left.length === 0) return;
    await sleep(KILL_POLL_MS);
  }
}

/**
 * The `mysql` adapter (MariaDB and MySQL): verifies by logging in, rotates with
 * `ALTER USER ... IDENTIFIED BY` (admin) or the account's own `SET PASSWORD` (self),
 * ends sessions with `KILL CONNECTION`.
 */
export const mysqlAdapter: Adapter<MysqlTarget> = {
  id: "mysql",
  description: "MariaDB and MySQL accounts (user or user@host): login check, ALTER USER / SET PASSWORD, KILL",
  config: mysqlConfig,
  constraints,

  checkAccountName: checkMysqlAccountName,

  verify: (target: MysqlTarget, cred: Credential, ctx: AdapterContext): Promise<Verdict> =>
    naming(target, ctx, () => verify(target, cred, ctx)),

  rotate: (target: MysqlTarget, change: PasswordChange, ctx: AdapterContext): Promise<void> =>
    naming(target, ctx, () => rotate(target, change, ctx)),

  /**
   * Ends every session of the account's user name: the process list shows the user, not
   * the account entry, so `app@host` also ends sessions `app` opened through another entry.
   */
  terminateSessions: (target: MysqlTarget, account: string, ctx: AdapterContext): Promise<number> =>
    naming(target, ctx, () => terminateSessions(target, account, ctx)),

  /**
   * Admin mode: on a pooled admin session, the account entry exists and the admin holds
   * CREATE USER or UPDATE on mysql.* (see checkAccountAsAdmin for what an admin that may not
   * read the grant tables leaves unchecked). Self mode: nothing can be checked without the
   * account's password, which registration does not have yet: resolves valid.
   */
  checkAccount: (target: MysqlTarget, account: string, ctx: AdapterContext): Promise<Verdict> =>
    naming(target, ctx, async () => {
      const parsed = requireAccount(account);
      const admin = ctx.admin;
      if (admin === undefined) return { valid: true };
      const deadline = Date.now() + ctx.timeoutMs;
      return adminSessions.use(
        adminSessionKey("mysql", target, admin),
        mysqlAdminDriver(target, admin, deadline),
        (session) => checkAccountAsAdmin(session.conn, parsed, deadline, ctx.log),
        ctx.log,
      );
    }),

  /** `mysql://<host>:<port>/<user>@<host pattern>`: `user` is `user@%`; the host pattern lowercased. */
  accountIdentity(target: MysqlTarget, account: string): string {
    const { user, host } = parseAccount(account);
    return accountIdentityOf("mysql", target.host, target.port ?? 3306, `${user}@${host.toLowerCase()}`);
  },

  close: () => adminSessions.closeAdapter("mysql"),
};

/** Runs one call with the server's address in every error it throws. */
function naming<T>(target: MysqlTarget, ctx: AdapterContext, work: () => Promise<T>): Promise<T> {
  return namingTarget("mysql", hostPort(target.host, target.port ?? 3306), ctx.timeoutMs, work);
}

async function verify(target: MysqlTarget, cred: Credential, ctx: AdapterContext): Promise<Verdict> {
  const deadline = Date.now() + ctx.timeoutMs;
  const account = requireAccount(cred.username);
  ctx.log.debug({ ...where(target), account: cred.username }, "mysql: verifying login");
  const login = await loginAsAccount(target, account, cred.password, deadline);
  if ("refused" in login) return { valid: false, reason: login.refused };
  await closeConnection(login.conn);
  return { valid: true };
}

async function rotate(target: MysqlTarget, change: PasswordChange, ctx: AdapterContext): Promise<void> {
  const deadline = Date.now() + ctx.timeoutMs;
  const account = requireAccount(change.account);
  const problem = checkPassword(change.next, constraints);
  if (problem !== null) throw new AdapterError("invalid", `mysql: ${problem}`, false);
  const mode = ctx.admin === undefined ? "self" : "admin";
  ctx.log.info({ ...where(target), account: change.account, mode }, "mysql: rotating password");

  if (ctx.admin !== undefined) {
    // Admin mode reuses an open admin connection: the login was checked when it was opened.
    await adminSessions.use(
      adminSessionKey(mysqlAdapter.id, target, ctx.admin),
      mysqlAdminDriver(target, ctx.admin, deadline),
      async (session) => {
        try {
          session.sqlMode ??= await sessionSqlMode(session.conn, deadline);
          await alterUserPassword(session.conn, account, change.next, deadline, session.sqlMode);
        } catch (err) {
          throw toAdapterError(err, "ALTER USER");
        }
      },
      ctx.log,
    );
  } else {
    const conn = await loginForSelfRotation(target, account, change, deadline, ctx);
    if (conn === null) {
      ctx.log.info({ ...where(target), account: change.account, mode }, "mysql: password already rotated");
      return;
    }
    try {
      await setOwnPassword(conn, change.next, deadline);
    } catch (err) {
      throw toAdapterError(err, "SET PASSWORD");
    } finally {
      await closeConnection(conn);
    }
  }
  ctx.log.info({ ...where(target), account: change.account, mode }, "mysql: password rotated");
}

async function terminateSessions(target: MysqlTarget, account: string, ctx: AdapterContext): Promise<number> {
  const deadline = Date.now() + ctx.timeoutMs;
  const { user } = requireAccount(account);
  const admin = ctx.admin;
  if (admin === undefined) {
    throw new AdapterError("privilege", "mysql: ending sessions needs an admin credential", false);
  }
  // On a pooled admin connection, like the ALTER USER before it: one login fewer per rotation.
  const ended = await adminSessions.use(
    adminSessionKey(mysqlAdapter.id, target, admin),
    mysqlAdminDriver(target, admin, deadline),
    async (session) => {
      try {
        return await killSessionsOf(session.conn, user, deadline);
      } catch (err) {
        throw toAdapterError(err, "terminate sessions");
      }
    },
    ctx.log,
  );
  ctx.log.info({ ...where(target), account, ended }, "mysql: sessions ended");
  return ended;
}

/** KILLs every connection of `user` but this one, and waits until they are gone. */
async function killSessionsOf(conn: Connection, user: string, deadline: number): Promise<number> {
  const rows = await runSelect<IdRow>(
    conn,
    "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()",
    [user],
    deadline,
  );
  const killed: number[] = [];
  for (const row of rows) {
    const id = Number(row.id);
    if (!Number.isSafeInteger(id) || id <= 0) continue;
    try {
      await runStatement(conn, `KILL CONNECTION ${id}`, deadline);
      killed.push(id);
    } catch (err) {
      // The session ended by itself between the listing and the KILL.
      if (serverErrno(err) !== ER_NO_SUCH_THREAD) throw err;
    }
  }
  remainingMs(deadline, "terminate sessions");
  await waitUntilGone(conn, killed, deadline);
  return killed.length;
}
