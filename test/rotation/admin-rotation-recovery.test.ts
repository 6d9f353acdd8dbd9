import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client as LdapClient } from "ldapts";
import { Redis } from "ioredis";
import type { Connection } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { builtinAdapters } from "../../adapters/registry.js";
import { AuditLog } from "../../sidecar/audit/index.js";
import { LeaseholdError } from "../../sidecar/errors.js";
import { type LeaseEvent, LeaseEventChannel } from "../../sidecar/events/index.js";
import { createLogger } from "../../sidecar/logger.js";
import { ResourceCatalog } from "../../sidecar/resources/catalog.js";
import type { AccountRecord, AdminRecord } from "../../sidecar/resources/types.js";
import { vaultPaths } from "../../sidecar/resources/vault-paths.js";
import { AdminRotation } from "../../sidecar/rotation/index.js";
import type { VaultStore } from "../../sidecar/secrets/index.js";
import type { CheckoutOk } from "../../sidecar/service/index.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { createMariadbAccount, dropMariadbAccount, localMariadb, mariadbRoot } from "../support/mariadb.js";
import { dropPrefix, REDIS_URL } from "../support/redis.js";
import { startSlapd, type TestSlapd } from "../support/slapd.js";
import { testVaultStore, useVault, type VaultHandle } from "../support/vault.js";
import { waitFor } from "../support/wait-for.js";
import { mariadbLogin } from "../support/mariadb.js";

/*
 * Admin rotation's schedule (Vault's last_rotated_at, one sidecar at a time), its recovery of a
 * rotation left unfinished, account rotations while the target already has the pending admin
 * password, the registration's checks of `rotation.admin`, and a failure (an LDAP rootdn).
 */

const tag = randomBytes(4).toString("hex");
const prefix = `lhtest:admrot:${tag}:`;
let vault: VaultHandle;
let lh: InProcessSidecar;
let secrets: VaultStore;
let root: Connection;
let redis: Redis;
let slapd: TestSlapd;
let dir: string;
let audit: AuditLog;
let events: LeaseEventChannel;
const seen: LeaseEvent[] = [];
const mariadbUsers: string[] = [];
let clock = Date.now();
let n = 0;
const meta = () => ({ requestId: `req_admrec_${++n}` });
const pw = () => randomBytes(18).toString("base64url");

/** One sidecar's admin rotation, on the test's clock. */
const sidecarOfCluster = () =>
  new AdminRotation({
    secrets,
    catalog: new ResourceCatalog(secrets),
    adapters: builtinAdapters,
    audit,
    events,
    redis,
    prefix,
    log: createLogger("silent"),
    backoff: 60,
    maxBackoff: 600,
    now: () => clock,
  });

const adminRecord = async (resource: string) =>
  (await secrets.read<AdminRecord>(vaultPaths.admin(resource)))?.data as AdminRecord;
const accountRecord = async (resource: string, account: string) =>
  (await secrets.read<AccountRecord>(vaultPaths.account(resource, account)))?.data as AccountRecord;

/** A MariaDB resource with a fresh admin and one account; returns its name and the admin's first password. */
async function mariadbResource(extra: Record<string, unknown> = {}) {
  const id = randomBytes(3).toString("hex");
  const admin = { username: `lhadm_s_${id}`, password: pw() };
  const account = `lhacc_s_${id}`;
  mariadbUsers.push(admin.username, account);
  await createMariadbAccount(root, admin.username, admin.password);
  await root.query(`GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO '${admin.username}'@'%'`);
  await createMariadbAccount(root, account, pw());
  const reg = {
    name: `sched-${id}`,
    adapter: "mysql",
    connection: { host: localMariadb.host, port: localMariadb.port },
    admin,
    accounts: [account],
    ...extra,
  };
  await lh.sidecar.resourceService.register(reg, { dryRun: false, pathName: reg.name, actor: "dba" });
  await waitFor(
    "the account available",
    async () => (await accountRecord(reg.name, account)).state === "available",
  );
  return { name: reg.name, admin, account, reg };
}

beforeAll(async () => {
  vault = await useVault();
  lh = await startInProcessSidecar({ vault });
  secrets = testVaultStore(vault, lh.vaultPrefix);
  [root, slapd] = await Promise.all([mariadbRoot(), startSlapd()]);
  redis = new Redis(REDIS_URL);
  dir = await mkdtemp(join(tmpdir(), "leasehold-admrot-"));
  audit = await AuditLog.open(join(dir, "audit.jsonl"), "test-sidecar");
  events = new LeaseEventChannel({ redis, prefix, log: createLogger("silent") });
  events.subscribe((e) => seen.push(e));
}, 120_000);

afterAll(async () => {
  for (const u of mariadbUsers) await dropMariadbAccount(root, u).catch(() => undefined);
  await root?.end();
  secrets?.close();
  await audit?.close();
  redis?.disconnect();
  await dropPrefix(prefix);
  await lh?.close();
  await Promise.allSettled([slapd?.stop(), vault?.close()]);
  await rm(dir, { recursive: true, force: true });
});

describe("rotation.admin in a registration", () => {
  it("refuses a bad or too short interval, naming the field, and a self-mode resource", async () => {
    const { reg } = await mariadbResource();
    for (const every of ["5m", "soon", "24", "400d"]) {
      const out = lh.sidecar.resourceService.register(
        { ...reg, rotation: { admin: { every } } },
        { dryRun: true, pathName: reg.name, actor: "dba" },
      );
      await expect(out).rejects.toThrow(LeaseholdError);
      await expect(out).rejects.toThrow(/^registration\.rotation\.admin\.every: /);
    }
    const self = { ...reg, rotateWith: "self", admin: undefined, rotation: { admin: { every: "24h" } } };
    await expect(
      lh.sidecar.resourceService.register(self, { dryRun: true, pathName: reg.name, actor: "dba" }),
    ).rejects.toThrow(/^registration\.rotation\.admin: needs rotateWith: admin/);
    const ok = await lh.sidecar.resourceService.register(
      { ...reg, rotation: { admin: { every: "24h" } } },
      { dryRun: true, pathName: reg.name, actor: "dba" },
    );
    expect(ok.checks.some((c) => c.includes("rotated every 24h"))).toBe(true);
  });
});

describe("the schedule", () => {
  it("rotates when Vault's last_rotated_at says so, on one sidecar of the cluster at a time", async () => {
    clock = Date.now();
    const { name, admin } = await mariadbResource({ rotation: { admin: { every: "1h" } } });
    const [one, two] = [sidecarOfCluster(), sidecarOfCluster()];
    await Promise.all([one.runDue(), two.runDue()]);
    expect((await adminRecord(name)).password === admin.password, "the expected password").toBe(true);

    clock += 2 * 3_600_000;
    await Promise.all([one.runDue(), two.runDue()]);
    const first = await adminRecord(name);
    expect(first.password !== admin.password, "a different password").toBe(true);
    // Rotated exactly once: the password it replaced is the registered one.
    expect(first.previous_password === admin.password, "the expected password").toBe(true);
    expect(first.last_rotated_at).toBe(new Date(clock).toISOString());
    expect(await mariadbLogin(admin.username, first.password)).toBe(true);
    expect(await mariadbLogin(admin.username, admin.password)).toBe(false);

    clock += 30 * 60_000;
    await Promise.all([one.runDue(), two.runDue()]);
    expect((await adminRecord(name)).password === first.password, "the expected password").toBe(true);
    clock += 31 * 60_000;
    await two.runDue();
    const second = await adminRecord(name);
    expect(second.previous_password === first.password, "the expected password").toBe(true);
    expect(await mariadbLogin(admin.username, second.password)).toBe(true);
  });
});

describe("a rotation left unfinished (a crash, a lost lock)", () => {
  it("target already changed: account rotations log in with the pending password; the next pass promotes it", async () => {
    const { name, admin, account } = await mariadbResource();
    const pending = pw();
    await root.query(`ALTER USER '${admin.username}'@'%' IDENTIFIED BY '${pending}'`);
    const entry = await secrets.read<AdminRecord>(vaultPaths.admin(name));
    await secrets.write(
      vaultPaths.admin(name),
      { ...entry?.data, pending_password: pending },
      entry?.version,
    );
    await builtinAdapters.get("mysql")?.close?.();

    const out = (await lh.sidecar.leaseService.checkout(
      await lh.identity("a"),
      { resource: name, task: { id: "T-pending" }, intent: { action: "read", tool: "sql" }, ttl: 60 },
      meta(),
    )) as CheckoutOk;
    const cred = await lh.sidecar.leaseService.credential(out.token, out.lease.id, meta());
    await lh.sidecar.leaseService.checkin(out.token, out.lease.id, meta());
    await waitFor("the account rotated with the pending admin password", async () => {
      const r = await accountRecord(name, account);
      return r.state === "available" && r.password !== cred.password;
    });
    expect(await mariadbLogin(account, (await accountRecord(name, account)).password)).toBe(true);

    await sidecarOfCluster().runDue();
    const rec = await adminRecord(name);
    expect(rec.password === pending, "the expected password").toBe(true);
    expect(rec.pending_password === undefined, "no pending password").toBe(true);
    expect(rec.previous_password === admin.password, "the expected password").toBe(true);
    expect(await mariadbLogin(admin.username, admin.password)).toBe(false);
  });

  it("target never changed: the pending password is dropped and a new rotation completes", async () => {
    const { name, admin } = await mariadbResource();
    const pending = pw();
    const entry = await secrets.read<AdminRecord>(vaultPaths.admin(name));
    await secrets.write(
      vaultPaths.admin(name),
      { ...entry?.data, pending_password: pending },
      entry?.version,
    );
    await sidecarOfCluster().runDue();
    const rec = await adminRecord(name);
    expect(rec.pending_password === undefined, "no pending password").toBe(true);
    expect([admin.password, pending].includes(rec.password), "a new password").toBe(false);
    expect(await mariadbLogin(admin.username, rec.password)).toBe(true);
    expect(await mariadbLogin(admin.username, pending)).toBe(false);
    expect(await mariadbLogin(admin.username, admin.password)).toBe(false);
  });
});

describe("a failure", () => {
  it("an LDAP rootdn admin: a clear refusal, audited and announced, the stored password untouched", async () => {
    await slapd.addUser("lhroot1", pw());
    const name = `rootdn-${tag}`;
    const reg = {
      name,
      adapter: "ldap",
      connection: { url: slapd.url, accountDn: slapd.accountDnTemplate },
      admin: { username: slapd.admin.dn, password: slapd.admin.password },
      accounts: ["lhroot1"],
    };
    // With rotation.admin the registration itself says so, before anything is written.
    await expect(
      lh.sidecar.resourceService.register(
        { ...reg, rotation: { admin: { every: "24h" } } },
        { dryRun: true, pathName: name, actor: "dba" },
      ),
    ).rejects.toThrow(
      /^registration\.rotation\.admin: .*rootdn\/rootpw admin has no entry and cannot be rotated/,
    );
    await lh.sidecar.resourceService.register(reg, { dryRun: false, pathName: name, actor: "dba" });
    const adminToken = lh.sidecar.adminToken;
    const res = await lh.sidecar.app.inject({
      method: "POST",
      url: `/v1/resources/${name}/rotate`,
      headers: { authorization: `Bearer ${adminToken}`, "x-leasehold-request": "true" },
      payload: { admin: true },
    });
    expect(res.statusCode).toBe(200);
    const [result] = (res.json() as { results: Array<{ account: string; status: string; error: string }> })
      .results;
    expect(result?.account).toBe(slapd.admin.dn);
    expect(result?.status).toBe("failed");
    expect(result?.error).toMatch(/rootdn\/rootpw admin has no entry and cannot be rotated/);

    const bad = await lh.sidecar.app.inject({
      method: "POST",
      url: `/v1/resources/${name}/rotate`,
      headers: { authorization: `Bearer ${adminToken}`, "x-leasehold-request": "true" },
      payload: { admin: "yes" },
    });
    expect(bad.statusCode).toBe(400);
    expect((bad.json() as { error: { message: string } }).error.message).toMatch(/admin/);

    const out = await sidecarOfCluster().rotate(name, "test");
    expect(out.status).toBe("failed");
    const rec = await adminRecord(name);
    expect(rec.password === slapd.admin.password, "the stored admin password is unchanged").toBe(true);
    // Never print a password in test output: compare, do not show.
    expect(rec.pending_password === undefined, "the refused pending password is dropped").toBe(true);
    expect(rec.failures).toBe(2);
    expect(Date.parse(rec.next_attempt_at ?? "")).toBeGreaterThan(clock);
    const c = new LdapClient({ url: slapd.url });
    await c.bind(slapd.admin.dn, rec.password);
    await c.unbind();

    const failed = seen.find((e) => e.type === "rotation_failed" && e.resource === name);
    expect(failed).toMatchObject({
      account: slapd.admin.dn,
      reason: expect.stringMatching(/^admin password: /),
    });
    const records = (await readFile(join(dir, "audit.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(records.find((r) => r.event === "rotation_failed" && r.resource === name)).toMatchObject({
      scope: "admin",
      account: slapd.admin.dn,
    });
    for (const line of records)
      expect(JSON.stringify(line).includes(slapd.admin.password), "a password in the audit trail").toBe(
        false,
      );
  });
});
