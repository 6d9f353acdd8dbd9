import { randomBytes } from "node:crypto";
import { Client as LdapClient } from "ldapts";
import { Redis } from "ioredis";
import type { Connection } from "mysql2/promise";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { builtinAdapters } from "../../adapters/registry.js";
import type { CrashPoint } from "../../sidecar/rotation/index.js";
import type { AccountRecord, AdminRecord } from "../../sidecar/resources/types.js";
import { vaultPaths } from "../../sidecar/resources/vault-paths.js";
import type { VaultStore } from "../../sidecar/secrets/index.js";
import type { CheckoutOk } from "../../sidecar/service/index.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { createMariadbAccount, dropMariadbAccount, localMariadb, mariadbRoot } from "../support/mariadb.js";
import { type ScramPostgres, startScramPostgres } from "../support/pg-cluster.js";
import { REDIS_URL } from "../support/redis.js";
import { REDIS_ACL_ADMIN_RULES } from "../support/redis-server.js";
import { startSlapd, type TestSlapd } from "../support/slapd.js";
import { testVaultStore, useVault, type VaultHandle } from "../support/vault.js";
import { waitFor } from "../support/wait-for.js";
import { mariadbLogin } from "../support/mariadb.js";

/*
 * Admin passwords rotate too (issue 17): on each real target the admin changes its own password
 * with the accounts' protocol; afterwards the old admin password is refused and Vault's new one
 * logs in, while a check-in's rotation and a checkout in the middle of it keep working.
 */

const tag = randomBytes(4).toString("hex");
let vault: VaultHandle;
let lh: InProcessSidecar;
let secrets: VaultStore;
let pgc: ScramPostgres;
let slapd: TestSlapd;
let root: Connection;
let redisRoot: Redis;
const aclUsers: string[] = [];
const mariadbUsers: string[] = [];
let hook: ((point: CrashPoint) => void) | undefined;
let n = 0;
const meta = () => ({ requestId: `req_admrot_${++n}` });
const pw = () => randomBytes(18).toString("base64url");

/** Whether this user name and password log in; each target checked with its own client, not the adapter. */
type Login = (username: string, password: string) => Promise<boolean>;

const pgLogin: Login = async (user, password) => {
  const c = new pg.Client({ host: pgc.host, port: pgc.port, user, password, database: "postgres" });
  try {
    await c.connect();
    await c.end();
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === "28P01") return false;
    throw err;
  }
};

const ldapLogin: Login = async (dn, password) => {
  const c = new LdapClient({ url: slapd.url });
  try {
    await c.bind(dn.includes("=") ? dn : slapd.userDn(dn), password);
    return true;
  } catch (err) {
    if ((err as { code?: number }).code === 49) return false;
    throw err;
  } finally {
    await c.unbind().catch(() => undefined);
  }
};

const redisLogin: Login = async (user, password) => {
  const c = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await c.connect();
    await c.call("AUTH", user, password);
    return true;
  } catch (err) {
    if (/WRONGPASS/.test((err as Error).message)) return false;
    throw err;
  } finally {
    c.disconnect();
  }
};

const adminRecord = async (resource: string) =>
  (await secrets.read<AdminRecord>(vaultPaths.admin(resource)))?.data as AdminRecord;
const accountRecord = async (resource: string, account: string) =>
  (await secrets.read<AccountRecord>(vaultPaths.account(resource, account)))?.data as AccountRecord;

async function register(reg: Record<string, unknown>): Promise<void> {
  const name = reg.name as string;
  await lh.sidecar.resourceService.register(reg, { dryRun: false, pathName: name, actor: "dba" });
  for (const a of reg.accounts as string[]) {
    await waitFor(
      `${name}/${a} available`,
      async () => (await accountRecord(name, a))?.state === "available",
    );
  }
}

async function checkout(resource: string): Promise<{ out: CheckoutOk; username: string; password: string }> {
  const out = (await lh.sidecar.leaseService.checkout(
    await lh.identity("a"),
    { resource, task: { id: `T-adm-${tag}` }, intent: { action: "read", tool: "sql" }, ttl: 60 },
    meta(),
  )) as CheckoutOk;
  const cred = await lh.sidecar.leaseService.credential(out.token, out.lease.id, meta());
  return { out, username: cred.username, password: cred.password };
}

/**
 * Registers, leases one account, rotates the admin; once the target has the new admin password
 * (before Vault promotes it) pooled admin connections are dropped, the lease is checked in (its
 * rotation must log in as the admin) and another account is checked out. Then: the old admin
 * password is refused, Vault's new one logs in, the checked-in account has a new password.
 */
async function exercise(
  reg: Record<string, unknown>,
  adminLogin: Login,
  accountLogin: Login,
  adapterId: string,
) {
  const resource = reg.name as string;
  await register(reg);
  const old = await adminRecord(resource);
  expect(await adminLogin(old.username, old.password)).toBe(true);
  const first = await checkout(resource);
  let during: Promise<{ username: string; password: string }> | undefined;
  hook = (point) => {
    if (point !== "admin_after_target_changed" || during) return;
    during = (async () => {
      // Connections opened with the old admin password must not be what keeps the check-in working.
      await builtinAdapters.get(adapterId)?.close?.();
      await lh.sidecar.leaseService.checkin(first.out.token, first.out.lease.id, meta());
      const second = await checkout(resource);
      return { username: second.username, password: second.password };
    })();
  };
  try {
    const out = await lh.sidecar.adminRotation.rotate(resource, "test");
    expect(out).toEqual({ status: "rotated", username: old.username });
  } finally {
    hook = undefined;
  }
  const second = await (during as Promise<{ username: string; password: string }>);
  expect(await accountLogin(second.username, second.password)).toBe(true);
  const now = await adminRecord(resource);
  expect(now.password !== old.password, "a different password").toBe(true);
  expect(now.pending_password === undefined, "no pending password").toBe(true);
  expect(now.previous_password === old.password, "the expected password").toBe(true);
  expect(typeof now.last_rotated_at).toBe("string");
  expect(await adminLogin(now.username, now.password)).toBe(true);
  expect(await adminLogin(old.username, old.password)).toBe(false);
  const checkedIn = first.username;
  await waitFor(`${checkedIn} rotated after check-in`, async () => {
    const r = await accountRecord(resource, checkedIn);
    return r.state === "available" && r.password !== first.password;
  });
  const rec = await accountRecord(resource, checkedIn);
  expect(await accountLogin(checkedIn, rec.password)).toBe(true);
  expect(await accountLogin(checkedIn, first.password)).toBe(false);
  // The sidecar keeps using the admin: a second admin rotation and an account rotation both work.
  expect((await lh.sidecar.adminRotation.rotate(resource, "again")).status).toBe("rotated");
  const again = await checkout(resource);
  await lh.sidecar.leaseService.checkin(again.out.token, again.out.lease.id, meta());
  await waitFor(`${again.username} rotated again`, async () => {
    const r = await accountRecord(resource, again.username);
    return r.state === "available" && r.password !== again.password;
  });
}

beforeAll(async () => {
  vault = await useVault();
  lh = await startInProcessSidecar({ vault, crashHook: (p) => hook?.(p) });
  secrets = testVaultStore(vault, lh.vaultPrefix);
  [pgc, slapd, root] = await Promise.all([startScramPostgres(), startSlapd(), mariadbRoot()]);
  redisRoot = new Redis(REDIS_URL);
}, 120_000);

afterAll(async () => {
  for (const u of aclUsers) await redisRoot?.call("ACL", "DELUSER", u).catch(() => undefined);
  for (const u of mariadbUsers) await dropMariadbAccount(root, u).catch(() => undefined);
  redisRoot?.disconnect();
  await root?.end();
  secrets?.close();
  await lh?.close();
  await Promise.allSettled([pgc?.stop(), slapd?.stop(), vault?.close()]);
});

describe("admin password rotation on each real target", () => {
  it("PostgreSQL (scram): the admin role changes its own password", async () => {
    const su = new pg.Client({
      ...pgc,
      user: "postgres",
      password: pgc.superuser.password,
      database: "postgres",
    });
    await su.connect();
    const admin = { username: "lh_pgadmin", password: pw() };
    await su.query(`CREATE ROLE lh_pgadmin LOGIN CREATEROLE PASSWORD '${admin.password}'`);
    for (const a of ["lh_pg_1", "lh_pg_2"]) await su.query(`CREATE ROLE ${a} LOGIN PASSWORD '${pw()}'`);
    await su.end();
    const reg = {
      name: `pg-${tag}`,
      adapter: "postgres",
      connection: { host: pgc.host, port: pgc.port, database: "postgres" },
      admin,
      accounts: ["lh_pg_1", "lh_pg_2"],
      rotation: { admin: { every: "24h" } },
    };
    await exercise(reg, pgLogin, pgLogin, "postgres");
  }, 120_000);

  it("PostgreSQL: the pooled admin connection opened with the old password is closed at once", async () => {
    const su = new pg.Client({
      ...pgc,
      user: "postgres",
      password: pgc.superuser.password,
      database: "postgres",
    });
    await su.connect();
    try {
      const admin = { username: "lh_pgadmin_pool", password: pw() };
      await su.query(`CREATE ROLE lh_pgadmin_pool LOGIN CREATEROLE PASSWORD '${admin.password}'`);
      await su.query(`CREATE ROLE lh_pgpool_1 LOGIN PASSWORD '${pw()}'`);
      await register({
        name: `pgpool-${tag}`,
        adapter: "postgres",
        connection: { host: pgc.host, port: pgc.port, database: "postgres" },
        admin,
        accounts: ["lh_pgpool_1"],
      });
      const backends = async () =>
        (
          await su.query<{ pid: number }>("select pid from pg_stat_activity where usename = $1", [
            admin.username,
          ])
        ).rows.map((r) => r.pid);
      // The import rotation left an idle admin connection in the pool (idle for up to 30 s).
      const before = await backends();
      expect(before.length).toBeGreaterThan(0);
      expect((await lh.sidecar.adminRotation.rotate(`pgpool-${tag}`, "test")).status).toBe("rotated");
      await waitFor(
        "the old admin password's pooled connection to be closed",
        async () => (await backends()).every((pid) => !before.includes(pid)),
        { timeoutMs: 10_000 },
      );
    } finally {
      await su.end();
    }
  }, 120_000);

  it("MariaDB: the admin account changes its own password", async () => {
    const admin = { username: `lhadm_m_${tag}`, password: pw() };
    const accounts = [`lhacc_m1_${tag}`, `lhacc_m2_${tag}`];
    mariadbUsers.push(admin.username, ...accounts);
    await createMariadbAccount(root, admin.username, admin.password);
    await root.query(`GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO '${admin.username}'@'%'`);
    for (const a of accounts) await createMariadbAccount(root, a, pw());
    const reg = {
      name: `mariadb-${tag}`,
      adapter: "mysql",
      connection: { host: localMariadb.host, port: localMariadb.port },
      admin,
      accounts,
      rotation: { admin: { every: "24h" } },
    };
    await exercise(reg, mariadbLogin, mariadbLogin, "mysql");
  }, 120_000);

  it("OpenLDAP: an admin entry that may write its own userPassword", async () => {
    for (const a of ["lhl1", "lhl2"]) await slapd.addUser(a, pw());
    const reg = {
      name: `ldap-${tag}`,
      adapter: "ldap",
      connection: { url: slapd.url, accountDn: slapd.accountDnTemplate },
      admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
      accounts: ["lhl1", "lhl2"],
      rotation: { admin: { every: "24h" } },
    };
    await exercise(reg, ldapLogin, ldapLogin, "ldap");
  }, 120_000);

  it("Redis ACL: the admin ACL user changes its own password", async () => {
    const admin = { username: `lhadm_r_${tag}`, password: pw() };
    const accounts = [`lhacc_r1_${tag}`, `lhacc_r2_${tag}`];
    aclUsers.push(admin.username, ...accounts);
    await redisRoot.call(
      "ACL",
      "SETUSER",
      admin.username,
      "reset",
      "on",
      `>${admin.password}`,
      ...REDIS_ACL_ADMIN_RULES,
    );
    for (const a of accounts) await redisRoot.call("ACL", "SETUSER", a, "reset", "on", `>${pw()}`, "+ping");
    const reg = {
      name: `redis-${tag}`,
      adapter: "redis-acl",
      connection: { host: "127.0.0.1", port: 6379 },
      admin,
      accounts,
      rotation: { admin: { every: "24h" } },
    };
    await exercise(reg, redisLogin, redisLogin, "redis-acl");
  }, 120_000);
});
