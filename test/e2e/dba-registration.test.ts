import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StackClient } from "../support/e2e-client.js";
import { createMariadbAccountAndAdmin, dropMariadbAccounts } from "../support/mariadb.js";
import { REDIS_URL } from "../support/redis.js";
import { type Stack, startStack } from "../support/stack.js";
import { mariadbLogin } from "../support/mariadb.js";

/**
 * A DBA's whole day through the CLI: dry run, register, show, verify, rotate, remove; PostgreSQL
 * and MariaDB. And the mistakes: an account another resource owns, an account that does not
 * exist, a quarantined account at removal.
 */

const POLICY = `@id("all-read")
permit (principal, action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"], resource)
when { context.intent == "read" };
`;
const tag = randomBytes(3).toString("hex");
const myUser = `lh_e2e_${tag}`;
const myAdmin = `lh_e2e_admin_${tag}`;
let stack: Stack;
let c: StackClient;
let admin: string;

/** A Vault entry under the stack's prefix, read as an operator would; null when absent. */
async function vaultEntry(path: string): Promise<Record<string, unknown> | null> {
  const cfg = await readFile(stack.configFile, "utf8");
  const prefix = /prefix: (leasehold-test-[0-9a-f]+)/.exec(cfg)?.[1];
  const res = await fetch(`${stack.vault.address}/v1/${stack.vault.mount}/data/${prefix}/${path}`, {
    headers: { "X-Vault-Token": stack.vault.token },
  });
  if (res.status === 404) return null;
  return ((await res.json()) as { data: { data: Record<string, unknown> } }).data.data;
}

/** The keys Vault lists under a folder of the stack's prefix. */
async function vaultKeys(path: string): Promise<string[]> {
  const cfg = await readFile(stack.configFile, "utf8");
  const prefix = /prefix: (leasehold-test-[0-9a-f]+)/.exec(cfg)?.[1];
  const res = await fetch(
    `${stack.vault.address}/v1/${stack.vault.mount}/metadata/${prefix}/${path}?list=true`,
    { headers: { "X-Vault-Token": stack.vault.token } },
  );
  if (res.status === 404) return [];
  return ((await res.json()) as { data: { keys: string[] } }).data.keys;
}

/** Whatever the sidecar keeps in Redis about a resource: its keys, and its place in the resource set. */
async function redisTraces(resource: string): Promise<string[]> {
  const r = new Redis(REDIS_URL);
  try {
    const keys = await r.keys(`${stack.prefix}*${resource}*`);
    return (await r.sismember(`${stack.prefix}resources`, resource)) ? [...keys, "resources set"] : keys;
  } finally {
    r.disconnect();
  }
}

/** Writes a PostgreSQL registration of the stack's cluster and returns its file. */
async function pgRegistration(name: string, accounts: string[]): Promise<string> {
  const file = join(stack.dir, `${name}.yaml`);
  await writeFile(
    file,
    stringify({
      name,
      adapter: "postgres",
      connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
      admin: { username: "leasehold_admin", password: stack.adminPassword },
      accounts,
    }),
  );
  return file;
}

beforeAll(async () => {
  stack = await startStack({ policy: POLICY, config: { rotation: { maxFailures: 1 } } });
  c = new StackClient(stack);
  admin = await c.adminToken();
  await stack.createRole("app_reports_1", "initial-pass-1234567");
  await stack.createRole("app_reports_2", "initial-pass-2234567");
  await stack.createRole("app_reports_q", "initial-pass-3234567");
  await createMariadbAccountAndAdmin(
    { name: myUser, password: "initial-mysql-123456" },
    { name: myAdmin, password: "admin-mysql-1234567" },
  );
  c.secrets.push(
    "initial-pass-1234567",
    "initial-pass-2234567",
    "initial-pass-3234567",
    "initial-mysql-123456",
    "admin-mysql-1234567",
    stack.adminPassword,
  );
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await dropMariadbAccounts(myUser, myAdmin);
});

describe("DBA workflow through the CLI", () => {
  it("--dry-run checks everything and writes nothing", async () => {
    const reg = {
      name: "reports-db",
      adapter: "postgres",
      connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
      admin: { username: "leasehold_admin", password: stack.adminPassword },
      accounts: ["app_reports_1"],
    };
    await writeFile(join(stack.dir, "reports-db.yaml"), stringify(reg));
    const dry = await stack.cli(
      "resources",
      "register",
      "-f",
      join(stack.dir, "reports-db.yaml"),
      "--dry-run",
    );
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain("dry run: reports-db would be registered");
    expect(dry.stdout).toContain("admin leasehold_admin logs in");
    const show = await stack.cli("resources", "show", "reports-db");
    expect(show.code).toBe(1);
    expect(await stack.canLogin("app_reports_1", "initial-pass-1234567")).toBe(true);

    await writeFile(
      join(stack.dir, "bad-admin.yaml"),
      stringify({ ...reg, admin: { username: "leasehold_admin", password: "wrong-password-123" } }),
    );
    const bad = await stack.cli("resources", "register", "-f", join(stack.dir, "bad-admin.yaml"));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/registration\.admin: the password does not log in/);
    expect(bad.stderr).not.toContain("wrong-password-123");
  });

  it("registers PostgreSQL and MariaDB resources, shows and verifies them; no human knows a live password", async () => {
    const pg = await stack.cli("resources", "register", "-f", join(stack.dir, "reports-db.yaml"));
    expect(pg.code, pg.stderr).toBe(0);
    const my = {
      name: "billing-mysql",
      adapter: "mysql",
      connection: { host: "127.0.0.1", port: 3306 },
      admin: { username: myAdmin, password: "admin-mysql-1234567" },
      accounts: [myUser],
    };
    await writeFile(join(stack.dir, "billing.yaml"), stringify(my));
    const r = await stack.cli("resources", "register", "-f", join(stack.dir, "billing.yaml"));
    expect(r.code, r.stderr).toBe(0);
    const list = await stack.cli("--json", "resources", "list");
    const names = (JSON.parse(list.stdout) as { resources: Array<{ name: string }> }).resources.map(
      (x) => x.name,
    );
    expect(names).toEqual(expect.arrayContaining(["reports-db", "billing-mysql"]));
    const show = await stack.cli("resources", "show", "billing-mysql");
    expect(show.stdout).toContain(myUser);
    expect(show.stdout).toContain("available");
    expect(await stack.canLogin("app_reports_1", "initial-pass-1234567")).toBe(false);
    expect(await mariadbLogin(myUser, "initial-mysql-123456")).toBe(false);
    const v = await stack.cli("resources", "verify", "billing-mysql");
    expect(v.code, v.stdout).toBe(0);
    expect(v.stdout).toContain(`ok   ${myUser}`);
    const adapters = await c.http("GET", "/v1/adapters", { token: admin });
    const ids = (adapters.json as { adapters: Array<{ id: string; config: object }> }).adapters.map(
      (a) => a.id,
    );
    expect(ids).toEqual(expect.arrayContaining(["postgres", "mysql"]));
  });

  it("a second resource claiming an owned account: 409 at --dry-run and at registration; the first's password untouched", async () => {
    const before = await c.vaultAccount("reports-db", "app_reports_1");
    const file = await pgRegistration("reports-twin", ["app_reports_1"]);
    for (const args of [["--dry-run"], []]) {
      const r = await stack.cli("resources", "register", "-f", file, ...args);
      expect(r.code, r.stdout).toBe(1);
      expect(r.stderr).toContain("conflict");
      expect(r.stderr).toContain('already managed by resource "reports-db" (account "app_reports_1")');
    }
    expect((await c.vaultAccount("reports-db", "app_reports_1")).password).toBe(before.password);
    expect(await vaultEntry("resources/reports-twin/config")).toBeNull();
    const v = await stack.cli("resources", "verify", "reports-db");
    expect(v.code, v.stdout).toBe(0);
    expect(v.stdout).toContain("ok   app_reports_1");
  });

  it("a missing account: the dry run names it FAIL; registration exits non-zero and leaves nothing in Vault or Redis", async () => {
    const file = await pgRegistration("missing-db", ["app_reports_2", "app_reports_nope"]);
    const dry = await stack.cli("resources", "register", "-f", file, "--dry-run");
    expect(dry.code, dry.stdout + dry.stderr).toBe(1);
    expect(dry.stdout).toMatch(/ok {4}account app_reports_2: exists/);
    expect(dry.stdout).toMatch(/FAIL {2}account app_reports_nope: .*does not exist/);
    const r = await stack.cli("resources", "register", "-f", file);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^ {2}FAIL {2}account app_reports_nope: .*does not exist\n/);
    expect(r.stderr).toContain(
      "leasehold: invalid_request: registration.accounts: 1 of 2 accounts failed, nothing was registered: app_reports_nope:",
    );
    expect(r.stdout).toBe("");
    expect(await vaultEntry("resources/missing-db/config")).toBeNull();
    expect(await vaultEntry("resources/missing-db/admin")).toBeNull();
    expect(await vaultKeys("resources/missing-db/accounts")).toEqual([]);
    const owners = await Promise.all((await vaultKeys("owners")).map((k) => vaultEntry(`owners/${k}`)));
    expect(owners.filter((o) => o?.resource === "missing-db")).toEqual([]);
    expect(await redisTraces("missing-db")).toEqual([]);
    expect(await stack.canLogin("app_reports_2", "initial-pass-2234567")).toBe(true);
  });

  it("an HTTP client registering a missing account gets 400 with details naming it", async () => {
    const reg = {
      name: "missing-http-db",
      adapter: "postgres",
      connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
      admin: { username: "leasehold_admin", password: stack.adminPassword },
      accounts: ["app_reports_2", "app_reports_nope"],
    };
    const res = await c.http("PUT", "/v1/resources/missing-http-db", { token: admin, body: reg });
    expect(res.status).toBe(400);
    const error = res.json.error as { code: string; message: string; details?: unknown };
    expect(error.code).toBe("invalid_request");
    expect(error.message).toMatch(
      /^registration\.accounts: 1 of 2 accounts failed, nothing was registered: app_reports_nope: .*does not exist/,
    );
    expect(error.details).toEqual([
      {
        field: "registration.accounts.1",
        message: expect.stringMatching(/^app_reports_nope: .*does not exist/),
      },
    ]);
    expect(JSON.stringify(res.json)).not.toContain(stack.adminPassword);
    expect(await vaultEntry("resources/missing-http-db/config")).toBeNull();
    expect(await vaultEntry("resources/missing-http-db/admin")).toBeNull();
    expect(await vaultKeys("resources/missing-http-db/accounts")).toEqual([]);
    const owners = await Promise.all((await vaultKeys("owners")).map((k) => vaultEntry(`owners/${k}`)));
    expect(owners.filter((o) => o?.resource === "missing-http-db")).toEqual([]);
    expect(await redisTraces("missing-http-db")).toEqual([]);
    expect(await stack.canLogin("app_reports_2", "initial-pass-2234567")).toBe(true);
  });

  it("--allow-partial registers the others and exits non-zero naming the failure", async () => {
    const file = await pgRegistration("partial-db", ["app_reports_2", "app_reports_nope"]);
    const r = await stack.cli("resources", "register", "-f", file, "--allow-partial");
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toContain("partial-db registered without 1 failed account(s)");
    expect(r.stdout).toMatch(/FAIL {2}account app_reports_nope: .*does not exist/);
    expect(r.stdout).toContain("account app_reports_2: available");
    const show = await c.http("GET", "/v1/resources/partial-db", { token: admin });
    expect((show.json.accounts as Array<{ name: string }>).map((a) => a.name)).toEqual(["app_reports_2"]);
    expect(await vaultEntry("resources/partial-db/accounts/app_reports_nope")).toBeNull();
    expect(await stack.canLogin("app_reports_2", "initial-pass-2234567")).toBe(false);
    const v = await stack.cli("resources", "verify", "partial-db");
    expect(v.code, v.stdout).toBe(0);
  });

  it("an agent uses the MariaDB account with its own client library; check-in kills the password", async () => {
    const body = {
      resource: "billing-mysql",
      task: { id: "BILL-1" },
      intent: { action: "read", tool: "mysql" },
      ttl: 60,
    };
    const lease = await c.checkoutAndReveal("a", body);
    expect(await mariadbLogin(myUser, lease.password)).toBe(true);
    expect((await c.http("DELETE", `/v1/leases/${lease.id}`, { token: lease.token })).status).toBe(202);
    await c.waitForAccounts("billing-mysql", "available");
    expect(await mariadbLogin(myUser, lease.password)).toBe(false);
    const rec = await c.vaultAccount("billing-mysql", myUser);
    expect(await mariadbLogin(myUser, rec.password)).toBe(true);
  });

  it("rotate on demand, and remove: refused while leased, --force revokes first", async () => {
    const before = await c.vaultAccount("reports-db", "app_reports_1");
    const rot = await stack.cli("resources", "rotate", "reports-db");
    expect(rot.code, rot.stdout + rot.stderr).toBe(0);
    const after = await c.vaultAccount("reports-db", "app_reports_1");
    expect(after.password).not.toBe(before.password);
    expect(await stack.canLogin("app_reports_1", before.password)).toBe(false);

    const body = { resource: "reports-db", task: { id: "R-1" }, intent: { action: "read" }, ttl: 60 };
    const lease = await c.checkoutAndReveal("a", body);
    const refused = await stack.cli("resources", "remove", "reports-db");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("conflict");
    const forced = await stack.cli("resources", "remove", "reports-db", "--force");
    expect(forced.code, forced.stderr).toBe(0);
    const use = await c.http("GET", `/v1/leases/${lease.id}/credential`, { token: lease.token });
    expect(use.status).toBe(401);
    expect(await stack.canLogin("app_reports_1", lease.password)).toBe(false);
    const gone = await c.http("GET", "/v1/resources/reports-db", { token: admin });
    expect(gone.status).toBe(404);
  });

  it("removal releases ownership: a new resource can then claim the account", async () => {
    const file = await pgRegistration("reports-twin", ["app_reports_1"]);
    const r = await stack.cli("resources", "register", "-f", file);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /ok {4}account app_reports_1: exists and the admin may change its password; imported/,
    );
    await c.waitForAccounts("reports-twin", "available");
    const v = await stack.cli("resources", "verify", "reports-twin");
    expect(v.code, v.stdout).toBe(0);
  });

  it("a quarantined account: remove says fix it or --force; --force finishes and says what was left", async () => {
    const file = await pgRegistration("q-db", ["app_reports_q"]);
    expect((await stack.cli("resources", "register", "-f", file)).code).toBe(0);
    await c.waitForAccounts("q-db", "available");
    await stack.asSuperuser((su) => su.query("DROP ROLE app_reports_q"));
    const rot = await stack.cli("resources", "rotate", "q-db");
    expect(rot.code).toBe(1);
    await c.waitForAccounts("q-db", "quarantined");

    const refused = await stack.cli("resources", "remove", "q-db");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("account app_reports_q is quarantined");
    expect(refused.stderr).toContain("--force");
    expect(refused.stderr).not.toContain("try again");

    const forced = await stack.cli("resources", "remove", "q-db", "--force");
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toContain("q-db removed");
    expect(forced.stdout).toMatch(
      /account app_reports_q: left as is: (account gone from the target|quarantined)/,
    );
    expect(forced.stdout).toContain("stay in Vault");
    expect((await c.http("GET", "/v1/resources/q-db", { token: admin })).status).toBe(404);
    expect(await vaultEntry("resources/q-db/accounts/app_reports_q")).not.toBeNull();
    const audit = await c.auditRecords();
    const removal = audit.find((a) => a.event === "registration" && a.resource === "q-db" && a.account);
    expect(removal?.reason).toMatch(/left unrotated/);
  });

  it("no secret in the logs", () => {
    const logs = stack.sidecar.output();
    for (const s of c.secrets) expect(logs.includes(s)).toBe(false);
  });
});
