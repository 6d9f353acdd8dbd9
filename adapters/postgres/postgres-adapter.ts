import type pg from "pg";
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
import { accountIdentityOf, hostPort, namingTarget } from "../target-address.js";
import { checkRoleName } from "./account-name.js";
import { type PostgresAdminSession, postgresAdminDriver } from "./admin-session.js";
import { checkRoleAsAdmin } from "./check-account.js";
import { type PostgresTarget, postgresConfig } from "./config.js";
import { closeClient, openClient, remainingMs, runQuery } from "./connection.js";
import { isLoginRefused, loginRefusedReason, toAdapterError } from "./errors.js";
import { checkPassword } from "./password-check.js";
import { quoteIdent, quoteLiteral } from "./quote.js";
import { scramSha256Verifier } from "./scram-verifier.js";

/**
 * Passwords never appear in a statement (a SCRAM verifier does), so any printable ASCII
 * character is fine; the cap keeps them usable with tools that read passwords into
 * fixed buffers (psql's prompt takes 100 bytes).
 */
const constraints: PasswordConstraints = { minLength: 16, maxLength: 99, forbidden: "" };

/** pg_terminate_backend(pid, timeout) waits for the backend to exit from PostgreSQL 14 on. */
const TERMINATE_WAITS_FROM = 140_000;
const TERMINATE_WAIT_CAP_MS = 5_000;

function where(target: PostgresTarget): {
  adapter: "postgres";
  host: string;
  port: number;
  database: string;
} {
  return { adapter: "postgres", host: target.host, port: target.port, database: target.database };
}

function requireRoleName(name: string): void {
  const problem = checkRoleName(name);
  if (problem !== null) throw new AdapterError("invalid", `postgres: ${problem}`, false);
}

/**
 * Self mode: logs in as the account with `current`, then `previous` (an interrupted
 * rotation may have left either in place). Resolves null when only `next` logs in,
 * i.e. the change is already done.
 */
async function loginForSelfRotation(
  target: PostgresTarget,
  change: PasswordChange,
  deadline: number,
  ctx: AdapterContext,
): Promise<pg.Client | null> {
  const tried = new Set<string>();
  for (const [label, password] of [
    ["current", change.current],
    ["previous", change.previous],
  ] as const) {
    if (password === undefined || password === "" || tried.has(password)) continue;
    tried.add(password);
    try {
      return await openClient(target, { username: change.account, password }, deadline);
    } catch (err) {
      if (!isLoginRefused(err)) throw toAdapterError(err, "login as the account");
      ctx.log.debug(
        { ...where(target), account: change.account, tried: label },
        "postgres: password refused",
      );
    }
  }
  try {
    const client = await openClient(target, { username: change.account, password: change.next }, deadline);
    await closeClient(client);
    return null;
  } catch (err) {
    if (!isLoginRefused(err)) throw toAdapterError(err, "login as the account");
  }
  throw new AdapterError(
    "auth_failed",
    "postgres: self rotation: neither the current nor the previous password logs in as the account",
    false,
  );
}

/**
 * The `postgres` adapter: verifies by logging in, rotates with `ALTER ROLE ... PASSWORD`
 * carrying a client-computed SCRAM-SHA-256 verifier (the plaintext never reaches the
 * server), and ends sessions with `pg_terminate_backend`.
 */
export const postgresAdapter: Adapter<PostgresTarget> = {
  id: "postgres",
  description:
    "PostgreSQL roles: login check, ALTER ROLE with a SCRAM-SHA-256 verifier, pg_terminate_backend",
  config: postgresConfig,
  constraints,

  checkAccountName: checkRoleName,

  verify: (target: PostgresTarget, cred: Credential, ctx: AdapterContext): Promise<Verdict> =>
    naming(target, ctx, () => verify(target, cred, ctx)),

  rotate: (target: PostgresTarget, change: PasswordChange, ctx: AdapterContext): Promise<void> =>
    naming(target, ctx, () => rotate(target, change, ctx)),

  terminateSessions: (target: PostgresTarget, account: string, ctx: AdapterContext): Promise<number> =>
    naming(target, ctx, () => terminateSessions(target, account, ctx)),

  /**
   * Admin mode: logs in as the admin (a pooled admin session) and reads pg_roles: the role
   * exists, may log in, and the admin may ALTER ROLE it under this server version's rules
   * (see checkRoleAsAdmin). Self mode: nothing can be checked without the account's password,
   * which registration does not have yet: resolves valid (verify checks the login later).
   */
  checkAccount: (target: PostgresTarget, account: string, ctx: AdapterContext): Promise<Verdict> =>
    naming(target, ctx, async () => {
      requireRoleName(account);
      const admin = ctx.admin;
      if (admin === undefined) return { valid: true };
      const deadline = Date.now() + ctx.timeoutMs;
      return adminSessions.use(
        adminSessionKey("postgres", target, admin),
        postgresAdminDriver(target, admin, deadline),
        (session) => checkRoleAsAdmin(session.client, account, admin.username, deadline),
        ctx.log,
      );
    }),

  /** `postgres://<host>:<port>/<role>`: roles belong to the whole cluster, so the database is left out. */
  accountIdentity: (target: PostgresTarget, account: string): string =>
    accountIdentityOf("postgres", target.host, target.port ?? 5432, account),

  close: () => adminSessions.closeAdapter("postgres"),
};

/** Runs one call with the server's address in every error it throws. */
function naming<T>(target: PostgresTarget, ctx: AdapterContext, work: () => Promise<T>): Promise<T> {
  return namingTarget("postgres", hostPort(target.host, target.port ?? 5432), ctx.timeoutMs, work);
}

async function verify(target: PostgresTarget, cred: Credential, ctx: AdapterContext): Promise<Verdict> {
  const deadline = Date.now() + ctx.timeoutMs;
  requireRoleName(cred.username);
  // pg refuses to start SCRAM with an empty password; no role of ours has one.
  if (cred.password === "") return { valid: false, reason: "empty password" };
  ctx.log.debug({ ...where(target), account: cred.username }, "postgres: verifying login");
  try {
    const client = await openClient(target, cred, deadline);
    await closeClient(client);
    return { valid: true };
  } catch (err) {
    if (isLoginRefused(err)) return { valid: false, reason: loginRefusedReason(err) };
    throw toAdapterError(err, "verify");
  }
}

async function rotate(target: PostgresTarget, change: PasswordChange, ctx: AdapterContext): Promise<void> {
  const deadline = Date.now() + ctx.timeoutMs;
  requireRoleName(change.account);
  const problem = checkPassword(change.next, constraints);
  if (problem !== null) throw new AdapterError("invalid", `postgres: ${problem}`, false);
  const mode = ctx.admin === undefined ? "self" : "admin";
  ctx.log.info({ ...where(target), account: change.account, mode }, "postgres: rotating password");

  // Hashing takes milliseconds of CPU (in libuv's pool): start it before connecting.
  const verifier = scramSha256Verifier(change.next);
  verifier.catch(() => undefined);
  const alter = async (client: pg.Client) => {
    try {
      const text = `ALTER ROLE ${quoteIdent(change.account)} PASSWORD ${quoteLiteral(await verifier)}`;
      remainingMs(deadline, "rotate");
      await runQuery(client, text, [], deadline);
    } catch (err) {
      throw toAdapterError(err, "ALTER ROLE");
    }
  };

  if (ctx.admin !== undefined) {
    // Admin mode reuses an open admin connection: the login was checked when it was opened.
    await adminSessions.use(
      adminSessionKey(postgresAdapter.id, target, ctx.admin),
      postgresAdminDriver(target, ctx.admin, deadline),
      (session) => alter(session.client),
      ctx.log,
    );
  } else {
    const client = await loginForSelfRotation(target, change, deadline, ctx);
    if (client === null) {
      ctx.log.info({ ...where(target), account: change.account, mode }, "postgres: password already rotated");
      return;
    }
    try {
      await alter(client);
    } finally {
      await closeClient(client);
    }
  }
  ctx.log.info({ ...where(target), account: change.account, mode }, "postgres: password rotated");
}

async function terminateSessions(
  target: PostgresTarget,
  account: string,
  ctx: AdapterContext,
): Promise<number> {
  const deadline = Date.now() + ctx.timeoutMs;
  requireRoleName(account);
  const admin = ctx.admin;
  if (admin === undefined) {
    throw new AdapterError("privilege", "postgres: ending sessions needs an admin credential", false);
  }
  // On a pooled admin connection, like the ALTER ROLE before it: one login fewer per rotation. A
  // connection busy waiting for backends to exit is not shared (the pool opens another meanwhile).
  const ended = await adminSessions.use(
    adminSessionKey(postgresAdapter.id, target, admin),
    postgresAdminDriver(target, admin, deadline),
    async (session) => {
      try {
        return await terminateAs(session, account, deadline);
      } catch (err) {
        throw toAdapterError(err, "terminate sessions");
      }
    },
    ctx.log,
  );
  ctx.log.info({ ...where(target), account, ended }, "postgres: sessions ended");
  return ended;
}

/** Ends `account`'s sessions from an admin connection; the server version is read once per connection. */
async function terminateAs(
  session: PostgresAdminSession,
  account: string,
  deadline: number,
): Promise<number> {
  if (session.serverVersion === undefined) {
    const [version] = await runQuery<{ v: number }>(
      session.client,
      "select current_setting('server_version_num')::int as v",
      [],
      deadline,
    );
    session.serverVersion = version?.v ?? 0;
  }
  // Waiting for each backend to exit means a caller can rely on the sessions being gone.
  const waitMs = Math.max(0, Math.min(remainingMs(deadline, "terminate") - 500, TERMINATE_WAIT_CAP_MS));
  const rows =
    session.serverVersion >= TERMINATE_WAITS_FROM
      ? await runQuery<{ ok: boolean }>(
          session.client,
          "select pg_terminate_backend(pid, $2::bigint) as ok from pg_stat_activity where usename = $1 and pid <> pg_backend_pid()",
          [account, waitMs],
          deadline,
        )
      : await runQuery<{ ok: boolean }>(
          session.client,
          "select pg_terminate_backend(pid) as ok from pg_stat_activity where usename = $1 and pid <> pg_backend_pid()",
          [account],
          deadline,
        );
  return rows.filter((r) => r.ok).length;
}
