import type { Adapter, AdapterContext, Credential, Verdict } from "../../adapters/adapter.js";
import { AdapterError } from "../../adapters/adapter.js";
import { escapeDnValue, parseDn } from "../../adapters/ldap/dn.js";

/** The admin addressed as an ordinary account of the adapter: the target to call and the account's name. */
export interface AdminAsAccount {
  readonly target: unknown;
  readonly account: string;
}

/**
 * How the admin changes its own password with the adapter's `rotate`: the account is the
 * admin's user name, except on LDAP, where the admin is a bind DN while `rotate` takes a name
 * that `accountDn` turns into a DN. There the DN's first RDN becomes the template's
 * `{account}` and the rest its parent, so `rotate` addresses exactly the admin's entry.
 * @throws AdapterError invalid when the admin cannot be addressed that way.
 */
export function adminAsAccount(adapterId: string, connection: unknown, username: string): AdminAsAccount {
  if (adapterId !== "ldap") return { target: connection, account: username };
  let rdns: ReturnType<typeof parseDn>;
  try {
    rdns = parseDn(username);
  } catch {
    throw new AdapterError("invalid", "ldap: the admin's bind DN is not a valid DN", false);
  }
  const [first, ...parent] = rdns;
  const only = first?.[0];
  if (!only || first.length !== 1 || parent.length === 0) {
    throw new AdapterError(
      "invalid",
      "ldap: the admin's bind DN must name one entry under a parent (a single-valued first RDN) to be rotated",
      false,
    );
  }
  const parentDn = parent
    .map((rdn) => rdn.map((atv) => `${atv.type}=${escapeDnValue(atv.value)}`).join("+"))
    .join(",");
  const target = {
    ...(connection as Record<string, unknown>),
    accountDn: `${only.type}={account},${parentDn}`,
  };
  return { target, account: only.value };
}

/** Whether `admin` logs in: the adapter's own admin check where it has one (LDAP bind DN, exec), else a login. */
export function verifyAdminLogin(
  adapter: Adapter<unknown>,
  connection: unknown,
  admin: Credential,
  ctx: AdapterContext,
): Promise<Verdict> {
  return adapter.verifyAdmin
    ? adapter.verifyAdmin(connection, admin, ctx)
    : adapter.verify(connection, admin, ctx);
}

/**
 * A clearer message for a refusal of the admin's own password change. On LDAP a rootdn
 * (`rootdn`/`rootpw` in slapd's configuration) has no entry, so it cannot change its password.
 */
export function explainAdminChangeError(adapterId: string, err: AdapterError): AdapterError {
  if (adapterId !== "ldap" || (err.code !== "invalid" && err.code !== "privilege")) return err;
  return new AdapterError(
    err.code,
    `${err.message}; the admin DN must be an entry that may change its own userPassword (a rootdn/rootpw admin has no entry and cannot be rotated)`,
    false,
  );
}
