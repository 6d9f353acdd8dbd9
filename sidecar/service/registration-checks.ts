import type { Adapter, Credential } from "../../adapters/adapter.js";
import { AdapterError } from "../../adapters/adapter.js";
import { LeaseholdError } from "../errors.js";
import type { OwnerEntry } from "../resources/ownership.js";
import { type Registration, registrationSchema } from "../resources/types.js";
import { describeIssues } from "../util/zod-errors.js";
import {
  accountIdentity,
  adapterContext,
  adapterOf,
  checkLogin,
  type ResourceDeps,
} from "./resource-deps.js";
import { parseBody } from "./validate.js";

/** One account's line in a registration's answer: `ok` or `FAIL` with what was found. */
export interface AccountCheck {
  readonly account: string;
  readonly ok: boolean;
  /** ok: what was checked or done; FAIL: the target's own reason (never a password). */
  readonly detail: string;
  /** A failed import only: whether the account's Vault record was removed or kept (and why, in detail). */
  readonly record?: "removed" | "kept" | undefined;
}

/** A registration, validated: the parsed body, its adapter, its connection and each account's identity. */
export interface ValidRegistration {
  readonly reg: Registration;
  readonly adapter: Adapter<unknown>;
  readonly connection: unknown;
  /** Account name → the account as the target knows it (the ownership index's key). */
  readonly identities: ReadonlyMap<string, string>;
}

/** The account names of a registration, in order. */
export function accountNames(reg: Registration): string[] {
  return reg.accounts.map((a) => (typeof a === "string" ? a : a.name));
}

/** Validates everything a registration says, before anything is read or written. */
export function validateRegistration(
  d: Pick<ResourceDeps, "adapters">,
  body: unknown,
  pathName?: string,
): ValidRegistration {
  const reg = parseBody(registrationSchema, body, "registration");
  if (pathName !== undefined && reg.name !== pathName) {
    throw new LeaseholdError(
      "invalid_request",
      `registration.name: "${reg.name}" differs from the URL's "${pathName}"`,
    );
  }
  const adapter = adapterOf(d, reg.adapter);
  const conn = adapter.config.safeParse(reg.connection);
  if (!conn.success)
    throw new LeaseholdError("invalid_request", describeIssues(conn.error.issues, "registration.connection"));
  if (reg.proxy?.databases !== undefined && reg.adapter !== "postgres" && reg.adapter !== "mysql") {
    throw new LeaseholdError(
      "invalid_request",
      "registration.proxy.databases: only a postgres or mysql resource's listener opens databases",
    );
  }
  if (reg.rotateWith === "admin" && !reg.admin) {
    throw new LeaseholdError("invalid_request", "registration.admin: required when rotateWith is admin");
  }
  const identities = new Map<string, string>();
  const byIdentity = new Map<string, number>();
  for (const [i, name] of accountNames(reg).entries()) {
    const problem = adapter.checkAccountName(name);
    if (problem) throw new LeaseholdError("invalid_request", `registration.accounts.${i}: ${problem}`);
    if (identities.has(name))
      throw new LeaseholdError("invalid_request", `registration.accounts.${i}: duplicate account`);
    if (reg.admin && name === reg.admin.username) {
      throw new LeaseholdError(
        "invalid_request",
        `registration.accounts.${i}: the admin account cannot be a managed account`,
      );
    }
    const identity = accountIdentity(adapter, conn.data, name);
    const twin = byIdentity.get(identity);
    if (twin !== undefined) {
      throw new LeaseholdError(
        "invalid_request",
        `registration.accounts.${i}: the same account on the target as registration.accounts.${twin}`,
      );
    }
    byIdentity.set(identity, i);
    identities.set(name, identity);
  }
  return { reg, adapter, connection: conn.data, identities };
}

/**
 * 409 conflict when another resource manages one of the accounts (the ownership index in
 * Vault), naming that resource and its account; nothing is read from or written to a target.
 */
export async function refuseOwnedAccounts(
  d: ResourceDeps,
  v: ValidRegistration,
  canSee?: (resource: string) => Promise<boolean>,
): Promise<void> {
  for (const [i, name] of accountNames(v.reg).entries()) {
    const owner = await d.owners.owner(v.identities.get(name) ?? "");
    if (!owner || (owner.resource === v.reg.name && owner.account === name)) continue;
    throw await ownedError(d, `registration.accounts.${i}`, name, owner, canSee);
  }
}

/** The 409 for an account another resource (or another account name) already manages. */
export async function ownedError(
  d: ResourceDeps,
  field: string,
  name: string,
  owner: OwnerEntry,
  canSee?: (resource: string) => Promise<boolean>,
): Promise<LeaseholdError> {
  // A DBA scoped to some resources learns nothing about the others: not even their names.
  if (canSee && !(await canSee(owner.resource).catch(() => false))) {
    return new LeaseholdError(
      "conflict",
      `${field}: account ${name} is already managed by another resource (one you may not register); ask an operator`,
    );
  }
  const registered = (await d.catalog.get(owner.resource)) !== null;
  const whose = `resource "${owner.resource}" (account "${owner.account}")`;
  const note = registered
    ? "; remove it there first"
    : `, which is not registered any more: its record in Vault may hold the account's only working password; register "${owner.resource}" again to recover it`;
  return new LeaseholdError("conflict", `${field}: account ${name} is already managed by ${whose}${note}`);
}

/**
 * The admin credential of an admin-mode registration (the given password, or the one in Vault
 * for an update), checked by logging in; undefined in self mode. Throws 400 (or 503 for a
 * target fault) when it does not work: no account can be checked without it.
 */
export async function checkedAdmin(d: ResourceDeps, v: ValidRegistration): Promise<Credential | undefined> {
  const { reg } = v;
  if (reg.rotateWith !== "admin" || !reg.admin) return undefined;
  const stored = await d.catalog.admin(reg.name);
  const password =
    reg.admin.password ?? (stored?.username === reg.admin.username ? stored.password : undefined);
  if (!password) {
    throw new LeaseholdError(
      "invalid_request",
      `registration.admin.password: required (no admin password for "${reg.name}" is in Vault yet)`,
    );
  }
  const admin = { username: reg.admin.username, password };
  try {
    const verdict = await checkLogin(v.adapter, v.connection, admin, adapterContext(d, undefined), true);
    if (!verdict.valid) {
      throw new LeaseholdError(
        "invalid_request",
        `registration.admin: the password does not log in (${verdict.reason})`,
      );
    }
  } catch (err) {
    if (!(err instanceof AdapterError)) throw err;
    const code = err.retryable ? "upstream_unavailable" : "invalid_request";
    throw new LeaseholdError(code, `registration.admin: ${err.message}`);
  }
  return admin;
}

/** One new account's check: its line, and whether a FAIL was a target fault that may pass later. */
export interface CheckedAccount {
  readonly line: AccountCheck;
  /** True when the check failed on a fault of the target (unreachable, timeout), not a refusal. */
  readonly transient: boolean;
}

/**
 * Checks one new account on its target, changing nothing: in self mode the given password logs
 * in; in admin mode a given password logs in, and the adapter's checkAccount says the account
 * exists and the admin may change its password. A refusal or a fault is a FAIL line.
 */
export async function checkNewAccount(
  d: ResourceDeps,
  v: ValidRegistration,
  account: { name: string; password?: string | undefined },
  admin: Credential | undefined,
): Promise<CheckedAccount> {
  const { adapter, connection } = v;
  const fail = (detail: string, transient = false): CheckedAccount => ({
    line: { account: account.name, ok: false, detail },
    transient,
  });
  try {
    const done: string[] = [];
    if (account.password) {
      const cred = { username: account.name, password: account.password };
      const login = await adapter.verify(connection, cred, adapterContext(d, undefined));
      if (!login.valid) return fail(`the given password does not log in (${login.reason})`);
      done.push("logs in with the given password");
    }
    if (admin && adapter.checkAccount) {
      const found = await adapter.checkAccount(connection, account.name, adapterContext(d, admin));
      if (!found.valid) return fail(found.reason);
      done.push("exists and the admin may change its password");
    } else if (admin && done.length === 0) {
      done.push(`not checked: adapter ${adapter.id} cannot check an account before its import rotation`);
    }
    return { line: { account: account.name, ok: true, detail: done.join("; ") }, transient: false };
  } catch (err) {
    if (err instanceof AdapterError) return fail(err.message, err.retryable);
    throw err;
  }
}
