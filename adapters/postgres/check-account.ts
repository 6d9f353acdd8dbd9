import type pg from "pg";
import type { Verdict } from "../adapter.js";
import { runQuery } from "./connection.js";
import { toAdapterError } from "./errors.js";

/** From PostgreSQL 16, CREATEROLE changes only roles the admin holds ADMIN OPTION on. */
const ADMIN_OPTION_FROM = 160_000;

interface RoleRow {
  readonly found: boolean;
  readonly target_super: boolean | null;
  readonly target_replication: boolean | null;
  readonly target_login: boolean | null;
  readonly is_self: boolean | null;
  readonly admin_super: boolean;
  readonly admin_createrole: boolean;
  readonly admin_option: boolean | null;
  readonly version: number;
}

/** The role and the logged-in admin, as the catalog shows them (pg_roles is readable by every role). */
const ROLE_QUERY = `select r.oid is not null as found,
  r.rolsuper as target_super, r.rolreplication as target_replication, r.rolcanlogin as target_login,
  r.oid = a.oid as is_self, a.rolsuper as admin_super, a.rolcreaterole as admin_createrole,
  pg_has_role(a.oid, r.oid, 'MEMBER WITH ADMIN OPTION') as admin_option,
  current_setting('server_version_num')::int as version
from pg_roles a left join pg_roles r on r.rolname = $1
where a.rolname = current_user`;

const q = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * Whether the admin logged in on `client` may change the password of `role`, by the rules of
 * ALTER ROLE in the server's own version (backend/commands/user.c): a superuser role and a
 * REPLICATION role only by a superuser; any other role by a superuser, or by a CREATEROLE role
 * (from PostgreSQL 16 only with ADMIN OPTION on it); every role its own password. A role that
 * may not log in is refused too: leasehold hands out passwords to log in with. The reasons are
 * PostgreSQL's own phrasing, with the names filled in; never a password.
 * @throws AdapterError for faults.
 */
export async function checkRoleAsAdmin(
  client: pg.Client,
  role: string,
  admin: string,
  deadline: number,
): Promise<Verdict> {
  let row: RoleRow | undefined;
  try {
    [row] = await runQuery<RoleRow & pg.QueryResultRow>(client, ROLE_QUERY, [role], deadline);
  } catch (err) {
    throw toAdapterError(err, "read pg_roles");
  }
  if (row === undefined)
    throw toAdapterError(new Error("pg_roles has no row for the admin"), "read pg_roles");
  if (!row.found) return { valid: false, reason: `role ${q(role)} does not exist` };
  const denied = (why: string): Verdict => ({
    valid: false,
    reason: `permission denied to alter role ${q(role)}: ${why}`,
  });
  if (row.is_self !== true && !row.admin_super) {
    if (row.target_super === true) {
      return denied(`only a SUPERUSER may alter a SUPERUSER role, and admin ${q(admin)} is not one`);
    }
    if (row.target_replication === true) {
      return denied(`only a SUPERUSER may alter a REPLICATION role, and admin ${q(admin)} is not one`);
    }
    if (!row.admin_createrole) {
      return denied(`admin ${q(admin)} has neither SUPERUSER nor CREATEROLE`);
    }
    if (row.version >= ADMIN_OPTION_FROM && row.admin_option !== true) {
      return denied(
        `from PostgreSQL 16 a CREATEROLE admin needs ADMIN OPTION on the role (GRANT ${q(role)} TO ${q(admin)} WITH ADMIN OPTION)`,
      );
    }
  }
  if (row.target_login !== true) {
    return { valid: false, reason: `role ${q(role)} is not permitted to log in (NOLOGIN)` };
  }
  return { valid: true };
}
