import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { accountDn } from "../../../adapters/ldap/dn.js";
import { EXEC_ADAPTERS } from "./exec-commands.js";

/** The target kinds `leasehold exec` knows the client conventions of. */
export { EXEC_ADAPTERS };
export type ExecAdapter = (typeof EXEC_ADAPTERS)[number];

/** What the child connects with: the revealed account, or the login at the resource's listener. */
export interface ExecLogin {
  readonly host?: string;
  readonly port?: number;
  readonly user: string;
  readonly password: string;
  /** The revealed connection settings (none in proxy mode). */
  readonly connection: Readonly<Record<string, unknown>>;
  readonly proxy: boolean;
}

const TOOL_KINDS: Record<string, ExecAdapter> = {
  psql: "postgres",
  pg_dump: "postgres",
  pg_restore: "postgres",
  pgbench: "postgres",
  postgres: "postgres",
  mysql: "mysql",
  mariadb: "mysql",
  mysqldump: "mysql",
  "mariadb-dump": "mysql",
  mysqladmin: "mysql",
  "redis-cli": "redis",
  redis: "redis",
  "redis-acl": "redis",
  valkey: "redis",
  "valkey-cli": "redis",
  ldapsearch: "ldap",
  ldapwhoami: "ldap",
  ldapmodify: "ldap",
  ldap: "ldap",
};

/**
 * The target's kind: `--adapter` when given, else what the revealed connection looks like
 * (an `ldap://` url, a `database`, a usual port), else the tool or command name.
 */
export function execAdapter(
  given: string | undefined,
  connection: Readonly<Record<string, unknown>>,
  hints: readonly (string | undefined)[],
): ExecAdapter | undefined {
  if (given !== undefined) return given as ExecAdapter;
  if (typeof connection.url === "string" && /^ldaps?:/i.test(connection.url)) return "ldap";
  if (typeof connection.database === "string") return "postgres";
  if (connection.port === 5432) return "postgres";
  if (connection.port === 3306) return "mysql";
  if (connection.port === 6379 || "persist" in connection) return "redis";
  for (const h of hints) {
    const kind = h === undefined ? undefined : TOOL_KINDS[basename(h).toLowerCase()];
    if (kind !== undefined) return kind;
  }
  return undefined;
}

/**
 * The variables the child gets: `LEASEHOLD_LEASE_ID`, `LEASEHOLD_USER`, `LEASEHOLD_PASSWORD`
 * (and `LEASEHOLD_HOST` / `LEASEHOLD_PORT` when known) always, and the target's own:
 * PostgreSQL `PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE`, MySQL/MariaDB
 * `MYSQL_HOST MYSQL_TCP_PORT USER MYSQL_PWD`, Redis `REDISCLI_AUTH REDIS_USER REDIS_URL`, LDAP
 * `LDAPURI LDAPBINDDN LDAPBINDPW`.
 */
export function execEnv(
  kind: ExecAdapter | undefined,
  login: ExecLogin,
  leaseId: string,
  database: string | undefined,
): Record<string, string> {
  const c = login.connection;
  const host = login.host ?? (typeof c.host === "string" ? c.host : undefined);
  const port = login.port ?? (typeof c.port === "number" ? c.port : undefined);
  const out: Record<string, string> = {
    LEASEHOLD_LEASE_ID: leaseId,
    LEASEHOLD_USER: login.user,
    LEASEHOLD_PASSWORD: login.password,
  };
  if (host !== undefined) out.LEASEHOLD_HOST = host;
  if (port !== undefined) out.LEASEHOLD_PORT = String(port);
  const set = (name: string, v: string | undefined) => {
    if (v !== undefined) out[name] = v;
  };
  if (kind === "postgres") {
    set("PGHOST", host);
    set("PGPORT", port?.toString());
    out.PGUSER = login.user;
    out.PGPASSWORD = login.password;
    out.PGDATABASE = database ?? (typeof c.database === "string" ? c.database : "postgres");
  } else if (kind === "mysql") {
    set("MYSQL_HOST", host);
    set("MYSQL_TCP_PORT", port?.toString());
    out.USER = login.user;
    out.MYSQL_PWD = login.password;
  } else if (kind === "redis") {
    out.REDISCLI_AUTH = login.password;
    out.REDIS_USER = login.user;
    const tls = c.tls !== undefined && c.tls !== false;
    const where = `${hostInUrl(host ?? "127.0.0.1")}:${port ?? 6379}`;
    const auth = `${encodeURIComponent(login.user)}:${encodeURIComponent(login.password)}`;
    out.REDIS_URL = `${tls ? "rediss" : "redis"}://${auth}@${where}`;
  } else if (kind === "ldap") {
    if (login.proxy) {
      // The listener: its address, and the bind DN it takes (cn=<lease id>).
      set("LDAPURI", host === undefined ? undefined : `ldap://${hostInUrl(host)}:${port ?? 389}`);
      out.LDAPBINDDN = `cn=${login.user}`;
    } else {
      set("LDAPURI", typeof c.url === "string" ? c.url : undefined);
      const template = typeof c.accountDn === "string" ? c.accountDn : undefined;
      out.LDAPBINDDN = template === undefined ? login.user : accountDn(template, login.user);
    }
    out.LDAPBINDPW = login.password;
  }
  return out;
}

function hostInUrl(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/**
 * The MariaDB/MySQL client takes its user name on Unix from the login, not from `USER`: a
 * private folder with a `my.cnf` naming the user (no password: that stays in `MYSQL_PWD`) is
 * named by `MYSQL_HOME` and `MARIADB_HOME`, which the MariaDB client reads. `remove` deletes it.
 */
export async function mysqlUserHome(
  user: string,
): Promise<{ env: Record<string, string>; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "leasehold-exec-"));
  const value = user.replaceAll("\\", "\\\\").replaceAll('"', '\\"');
  await writeFile(join(dir, "my.cnf"), `[client]\nuser="${value}"\n`, { mode: 0o600 });
  return {
    env: { MYSQL_HOME: dir, MARIADB_HOME: dir },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
