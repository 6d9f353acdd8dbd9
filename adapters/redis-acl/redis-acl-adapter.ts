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
import { checkAclUserName } from "./account-name.js";
import { accountIdentityOf, hostPort, namingTarget } from "../target-address.js";
import { redisAdminDriver } from "./admin-session.js";
import { checkUserAsAdmin } from "./check-account.js";
import { type RedisAclTarget, redisAclConfig } from "./config.js";
import { closeConnection, command, openConnection } from "./connection.js";
import { checkPassword } from "./password-check.js";

/** Redis takes any bytes; printable ASCII keeps passwords usable from redis-cli and every client. */
const constraints: PasswordConstraints = { minLength: 16, maxLength: 256, forbidden: "" };

function where(target: RedisAclTarget): { adapter: "redis-acl"; host: string; port: number } {
  return { adapter: "redis-acl", host: target.host, port: target.port };
}

function requireUserName(name: string): void {
  const problem = checkAclUserName(name);
  if (problem !== null) throw new AdapterError("invalid", `redis-acl: ${problem}`, false);
}

function requireAdmin(ctx: AdapterContext, what: string): Credential {
  if (ctx.admin === undefined) {
    throw new AdapterError(
      "privilege",
      `redis-acl: ${what} needs an admin ACL user (rotateWith: admin): Redis has no command that lets a user change only its own password`,
      false,
    );
  }
  return ctx.admin;
}

/**
 * The `redis-acl` adapter (Redis 6+ ACL users): verifies with `AUTH user password` on a
 * fresh connection, rotates as an admin ACL user with `ACL SETUSER <user> resetpass >next`
 * (only for a user `ACL GETUSER` finds, so a missing user is never created), ends sessions
 * with `CLIENT KILL USER`. Admin mode only.
 */
export const redisAclAdapter: Adapter<RedisAclTarget> = {
  id: "redis-acl",
  description: "Redis ACL users: AUTH check, ACL SETUSER resetpass (admin only), CLIENT KILL USER",
  config: redisAclConfig,
  constraints,

  checkAccountName: checkAclUserName,

  verify: (target: RedisAclTarget, cred: Credential, ctx: AdapterContext): Promise<Verdict> =>
    naming(target, ctx, () => verify(target, cred, ctx)),

  rotate: (target: RedisAclTarget, change: PasswordChange, ctx: AdapterContext): Promise<void> =>
    naming(target, ctx, () => rotate(target, change, ctx)),

  terminateSessions: (target: RedisAclTarget, account: string, ctx: AdapterContext): Promise<number> =>
    naming(target, ctx, () => terminateSessions(target, account, ctx)),

  /**
   * On a pooled admin session: `ACL GETUSER` finds the user, and (where the admin may run
   * `ACL DRYRUN`, Redis 7+) the admin may run `ACL SETUSER` (and `ACL SAVE` with
   * `persist: aclfile`). Without an admin: valid:false, since Redis has no self mode.
   */
  checkAccount: (target: RedisAclTarget, account: string, ctx: AdapterContext): Promise<Verdict> =>
    naming(target, ctx, async () => {
      requireUserName(account);
      const admin = ctx.admin;
      if (admin === undefined) {
        return {
          valid: false,
          reason:
            "redis-acl changes passwords only as an admin ACL user (rotateWith: admin): Redis has no command that lets a user change only its own password",
        };
      }
      const deadline = Date.now() + ctx.timeoutMs;
      return adminSessions.use(
        adminSessionKey(redisAclAdapter.id, target, admin),
        redisAdminDriver(target, admin, deadline),
        (redis) => checkUserAsAdmin(redis, target, account, admin.username, deadline),
        ctx.log,
      );
    }),

  /** `redis-acl://<host>:<port>/<user>`: ACL users belong to one server (node). */
  accountIdentity: (target: RedisAclTarget, account: string): string =>
    accountIdentityOf("redis-acl", target.host, target.port ?? 6379, account),

  close: () => adminSessions.closeAdapter("redis-acl"),
};

/** Runs one call with the server's address in every error it throws. */
function naming<T>(target: RedisAclTarget, ctx: AdapterContext, work: () => Promise<T>): Promise<T> {
  return namingTarget("redis-acl", hostPort(target.host, target.port ?? 6379), ctx.timeoutMs, work);
}

async function verify(target: RedisAclTarget, cred: Credential, ctx: AdapterContext): Promise<Verdict> {
  const deadline = Date.now() + ctx.timeoutMs;
  requireUserName(cred.username);
  ctx.log.debug({ ...where(target), account: cred.username }, "redis-acl: verifying AUTH");
  try {
    const redis = await openConnection(target, cred, deadline);
    closeConnection(redis);
    return { valid: true };
  } catch (err) {
    if (err instanceof AdapterError && err.code === "auth_failed") {
      return { valid: false, reason: "AUTH refused: wrong password, unknown or disabled user (WRONGPASS)" };
    }
    throw err;
  }
}

async function rotate(target: RedisAclTarget, change: PasswordChange, ctx: AdapterContext): Promise<void> {
  const deadline = Date.now() + ctx.timeoutMs;
  requireUserName(change.account);
  const problem = checkPassword(change.next, constraints);
  if (problem !== null) throw new AdapterError("invalid", `redis-acl: ${problem}`, false);
  const admin = requireAdmin(ctx, "rotation");
  ctx.log.info({ ...where(target), account: change.account, mode: "admin" }, "redis-acl: rotating password");

  // Reuses an open connection authenticated as the admin user.
  await adminSessions.use(
    adminSessionKey(redisAclAdapter.id, target, admin),
    redisAdminDriver(target, admin, deadline),
    async (redis) => {
      // ACL SETUSER creates a missing user; look first. (ACL commands cannot run in scripts or
      // transactions with a condition, so a user deleted in between would come back disabled,
      // with no permissions: harmless, and reported by the next verify.)
      const found = await command(redis, ["ACL", "GETUSER", change.account], deadline, "ACL GETUSER");
      if (found === null) {
        throw new AdapterError(
          "invalid",
          "redis-acl: no such ACL user (ACL GETUSER found none); not creating it",
          false,
        );
      }
      // resetpass drops every password (and nopass) so only `next` logs in afterwards.
      await command(
        redis,
        ["ACL", "SETUSER", change.account, "resetpass", `>${change.next}`],
        deadline,
        "ACL SETUSER",
      );
      if (target.persist === "aclfile") await command(redis, ["ACL", "SAVE"], deadline, "ACL SAVE");
    },
    ctx.log,
  );
  ctx.log.info({ ...where(target), account: change.account, mode: "admin" }, "redis-acl: password rotated");
}

async function terminateSessions(
  target: RedisAclTarget,
  account: string,
  ctx: AdapterContext,
): Promise<number> {
  const deadline = Date.now() + ctx.timeoutMs;
  requireUserName(account);
  const admin = requireAdmin(ctx, "ending sessions");
  // On a pooled admin connection, like the ACL SETUSER before it: one login fewer per rotation.
  const count = await adminSessions.use(
    adminSessionKey(redisAclAdapter.id, target, admin),
    redisAdminDriver(target, admin, deadline),
    async (redis) => {
      const found = await command(redis, ["ACL", "GETUSER", account], deadline, "ACL GETUSER");
      // CLIENT KILL USER fails for an unknown user; such a user has no sessions.
      if (found === null) return 0;
      const ended = await command(redis, ["CLIENT", "KILL", "USER", account], deadline, "CLIENT KILL");
      const n = typeof ended === "number" ? ended : Number(ended);
      if (!Number.isSafeInteger(n) || n < 0) {
        throw new AdapterError("failed", "redis-acl: CLIENT KILL returned no count", false);
      }
      return n;
    },
    ctx.log,
  );
  ctx.log.info({ ...where(target), account, ended: count }, "redis-acl: sessions ended");
  return count;
}
