import { debuglog } from "node:util";
import type { Client } from "ldapts";
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
import { checkLdapAccountName } from "./account-name.js";
import { accountIdentityOf, hostPort, namingTarget } from "../target-address.js";
import { ldapAdminDriver, requireBound } from "./admin-session.js";
import { checkEntryAsAdmin } from "./check-account.js";
import { type LdapTarget, ldapConfig } from "./config.js";
import { closeClient, isEncrypted, openClient, urlHost, withinDeadline } from "./connection.js";
import { accountDn, canonicalDn } from "./dn.js";
import { changeMethod, setOwnPassword, setPasswordAsAdmin } from "./password-change.js";
import { checkPassword } from "./password-check.js";

/** Printable ASCII (same bytes in UTF-8 and, for AD, UTF-16LE); AD caps unicodePwd at 256. */
const constraints: PasswordConstraints = { minLength: 16, maxLength: 128, forbidden: "" };

function where(target: LdapTarget): { adapter: "ldap"; url: string } {
  return { adapter: "ldap", url: target.url };
}

function requireAccount(target: LdapTarget, name: string): string {
  const problem = checkLdapAccountName(name);
  if (problem !== null) throw new AdapterError("invalid", `ldap: ${problem}`, false);
  try {
    return accountDn(target.accountDn, name);
  } catch (err) {
    throw new AdapterError("invalid", `ldap: ${err instanceof Error ? err.message : "bad accountDn"}`, false);
  }
}

/** Settings checked again at call time, for targets that did not come through the schema. */
function requireSafeTarget(target: LdapTarget): void {
  if (target.activeDirectory === true && !isEncrypted(target)) {
    throw new AdapterError(
      "invalid",
      "ldap: Active Directory changes passwords only over TLS: use ldaps:// or startTls: true",
      false,
    );
  }
}

/**
 * ldapts traces every request, modify values included, when NODE_DEBUG names it: a
 * password change would then write the new password to stderr. Refused rather than leaked.
 */
function requireNoWireTrace(): void {
  if (debuglog("ldapts").enabled) {
    throw new AdapterError(
      "invalid",
      "ldap: NODE_DEBUG=ldapts would print passwords to stderr; unset it to rotate LDAP passwords",
      false,
    );
  }
}

/** Binds `client` as `dn`; refusals come back as false, faults as AdapterErrors. */
async function tryBind(client: Client, dn: string, password: string, deadline: number): Promise<boolean> {
  // A DN with an empty password is an unauthenticated bind: some servers accept it as anonymous.
  if (password === "") return false;
  try {
    await withinDeadline(client, client.bind(dn, password), deadline, "bind");
    return true;
  } catch (err) {
    if (err instanceof AdapterError && err.code === "auth_failed") return false;
    throw err;
  }
}

/**
 * Self mode: binds as the account with `current`, then `previous`. Resolves the password
 * that bound, or null when only `next` binds (the change is already done).
 */
async function bindForSelfRotation(
  client: Client,
  dn: string,
  change: PasswordChange,
  deadline: number,
  ctx: AdapterContext,
  target: LdapTarget,
): Promise<string | null> {
  const tried = new Set<string>();
  for (const [label, password] of [
    ["current", change.current],
    ["previous", change.previous],
  ] as const) {
    if (password === undefined || password === "" || tried.has(password)) continue;
    tried.add(password);
    if (await tryBind(client, dn, password, deadline)) return password;
    ctx.log.debug({ ...where(target), account: change.account, tried: label }, "ldap: bind refused");
  }
  if (await tryBind(client, dn, change.next, deadline)) return null;
  throw new AdapterError(
    "auth_failed",
    "ldap: self rotation: neither the current nor the previous password binds as the account",
    false,
  );
}

/**
 * The `ldap` adapter (OpenLDAP and compatible servers; Active Directory with
 * `activeDirectory: true`): verifies with a simple bind as the account's DN, changes
 * passwords with the Password Modify extended operation or a modify of `userPassword`
 * (`unicodePwd` on AD), as an administrator DN or as the account itself. LDAP binds last
 * one operation, so there are no sessions to end: no `terminateSessions`.
 */
export const ldapAdapter: Adapter<LdapTarget> = {
  id: "ldap",
  description:
    "LDAP directories (OpenLDAP, Active Directory over TLS): bind check, Password Modify or userPassword/unicodePwd change",
  config: ldapConfig,
  constraints,

  checkAccountName: checkLdapAccountName,

  verify: (target: LdapTarget, cred: Credential, ctx: AdapterContext): Promise<Verdict> =>
    naming(target, ctx, () => verify(target, cred, ctx)),

  /** The admin is a bind DN given as is (not an `{account}` of the template): bind with it. */
  verifyAdmin: (target: LdapTarget, admin: Credential, ctx: AdapterContext): Promise<Verdict> =>
    naming(target, ctx, () => verifyAdmin(target, admin, ctx)),

  rotate: (target: LdapTarget, change: PasswordChange, ctx: AdapterContext): Promise<void> =>
    naming(target, ctx, () => rotate(target, change, ctx)),

  /**
   * Admin mode: bound as the admin DN (a pooled session), a modify that cannot succeed tells
   * whether the account's entry exists and the admin may write its userPassword, changing
   * nothing (see checkEntryAsAdmin; Active Directory: existence only). Self mode: nothing can
   * be checked without binding as the account, whose password registration does not have
   * yet: resolves valid.
   */
  checkAccount: (target: LdapTarget, account: string, ctx: AdapterContext): Promise<Verdict> =>
    naming(target, ctx, async () => {
      const dn = requireAccount(target, account);
      requireSafeTarget(target);
      const admin = ctx.admin;
      if (admin === undefined) return { valid: true };
      const deadline = Date.now() + ctx.timeoutMs;
      return adminSessions.use(
        adminSessionKey(ldapAdapter.id, target, admin),
        ldapAdminDriver(target, admin, deadline),
        (session) => {
          requireBound(session);
          return checkEntryAsAdmin({
            client: session.client,
            dn,
            admin: admin.username,
            activeDirectory: target.activeDirectory === true,
            deadline,
            log: ctx.log,
          });
        },
        ctx.log,
      );
    }),

  /**
   * `ldap://<host>:<port>/<DN>`: the directory's host and port (ldap:// 389 and ldaps:// 636
   * by default) and the account's DN in canonical form (see canonicalDn).
   */
  accountIdentity(target: LdapTarget, account: string): string {
    const dn = requireAccount(target, account);
    return accountIdentityOf("ldap", urlHost(target.url), urlPort(target.url), canonicalDn(dn));
  },

  close: () => adminSessions.closeAdapter("ldap"),
};

/** The URL's port, or the scheme's default (389, ldaps 636). */
function urlPort(url: string): number {
  const port = new URL(url).port;
  return port === "" ? (/^ldaps:/i.test(url) ? 636 : 389) : Number(port);
}

/** Runs one call with the directory's address (scheme, host and port; never credentials) in its errors. */
function naming<T>(target: LdapTarget, ctx: AdapterContext, work: () => Promise<T>): Promise<T> {
  const scheme = /^ldaps:/i.test(target.url) ? "ldaps" : "ldap";
  const address = `${scheme}://${hostPort(urlHost(target.url), urlPort(target.url))}`;
  return namingTarget("ldap", address, ctx.timeoutMs, work);
}

async function verify(target: LdapTarget, cred: Credential, ctx: AdapterContext): Promise<Verdict> {
  const deadline = Date.now() + ctx.timeoutMs;
  const dn = requireAccount(target, cred.username);
  requireSafeTarget(target);
  if (cred.password === "") {
    return { valid: false, reason: "empty password (a bind without one is anonymous and proves nothing)" };
  }
  ctx.log.debug({ ...where(target), account: cred.username, dn }, "ldap: verifying bind");
  const client = await openClient(target, deadline);
  try {
    return (await tryBind(client, dn, cred.password, deadline))
      ? { valid: true }
      : { valid: false, reason: "bind refused: wrong password, no such entry, or a locked account" };
  } finally {
    await closeClient(client);
  }
}

async function verifyAdmin(target: LdapTarget, admin: Credential, ctx: AdapterContext): Promise<Verdict> {
  const deadline = Date.now() + ctx.timeoutMs;
  requireSafeTarget(target);
  if (admin.password === "") return { valid: false, reason: "empty password" };
  const client = await openClient(target, deadline);
  try {
    return (await tryBind(client, admin.username, admin.password, deadline))
      ? { valid: true }
      : { valid: false, reason: "admin bind refused: wrong password, no such entry, or a locked account" };
  } finally {
    await closeClient(client);
  }
}

async function rotate(target: LdapTarget, change: PasswordChange, ctx: AdapterContext): Promise<void> {
  const deadline = Date.now() + ctx.timeoutMs;
  const dn = requireAccount(target, change.account);
  requireSafeTarget(target);
  const problem = checkPassword(change.next, constraints);
  if (problem !== null) throw new AdapterError("invalid", `ldap: ${problem}`, false);
  requireNoWireTrace();
  const method = changeMethod(target);
  const mode = ctx.admin === undefined ? "self" : "admin";
  ctx.log.info({ ...where(target), account: change.account, dn, mode, method }, "ldap: rotating password");

  if (ctx.admin !== undefined) {
    // Admin mode reuses a connection already bound as the admin DN.
    await adminSessions.use(
      adminSessionKey(ldapAdapter.id, target, ctx.admin),
      ldapAdminDriver(target, ctx.admin, deadline),
      async (session) => {
        requireBound(session);
        await setPasswordAsAdmin(session.client, method, dn, change.next, deadline);
      },
      ctx.log,
    );
  } else {
    const client = await openClient(target, deadline);
    try {
      const bound = await bindForSelfRotation(client, dn, change, deadline, ctx, target);
      if (bound === null) {
        ctx.log.info({ ...where(target), account: change.account, mode }, "ldap: password already rotated");
        return;
      }
      await setOwnPassword(client, method, dn, bound, change.next, deadline);
    } finally {
      await closeClient(client);
    }
  }
  ctx.log.info({ ...where(target), account: change.account, mode }, "ldap: password rotated");
}
