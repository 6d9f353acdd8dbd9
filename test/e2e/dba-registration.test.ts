import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createConnection } from "mysql2/promise";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StackClient } from "../support/e2e-client.js";
import { createMariadbAccount, dropMariadbAccount, mariadbRoot } from "../support/mariadb.js";
import { type Stack, startStack } from "../support/stack.js";

/** A DBA's whole day through the CLI: dry run, register, show, verify, rotate, remove; PostgreSQL and MariaDB. */

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

async function mysqlLogin(user: string, password: string): Promise<boolean> {
  try {
    const conn = await createConnection({ host: "127.0.0.1", port: 3306, user, password });
    await conn.end();
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === "ER_ACCESS_DENIED_ERROR") return false;
    throw err;
  }
}

beforeAll(async () => {
  stack = await startStack({ policy: POLICY });
  c = new StackClient(stack);
  admin = await c.adminToken();
  await stack.createRole("app_reports_1", "initial-pass-1234567");
  const root = await mariadbRoot();
  try {
    await createMariadbAccount(root, myUser, "initial-mysql-123456");
    await createMariadbAccount(root, myAdmin, "admin-mysql-1234567");
    await root.query(`GRANT CREATE USER ON *.* TO '${myAdmin}'@'%'`);
    await root.query(`GRANT PROCESS, CONNECTION ADMIN ON *.* TO '${myAdmin}'@'%'`).catch(() => undefined);
  } finally {
    await root.end();
  }
  c.secrets.push("initial-pass-1234567", "initial-mysql-123456", "admin-mysql-1234567", stack.adminPassword);
}, 120_000);

afterAll(async () => {
  await stack?.close();
  const root = await mariadbRoot();
  try {
    await dropMariadbAccount(root, myUser);
    await dropMariadbAccount(root, myAdmin);
  } finally {
    await root.end();
  }
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
    expect(await mysqlLogin(myUser, "initial-mysql-123456")).toBe(false);
    const v = await stack.cli("resources", "verify", "billing-mysql");
    expect(v.code, v.stdout).toBe(0);
    expect(v.stdout).toContain(`ok   ${myUser}`);
    const adapters = await c.http("GET", "/v1/adapters", { token: admin });
    const ids = (adapters.json as { adapters: Array<{ id: string; config: object }> }).adapters.map(
      (a) => a.id,
    );
    expect(ids).toEqual(expect.arrayContaining(["postgres", "mysql"]));
  });

  it("an agent uses the MariaDB account with its own client library; check-in kills the password", async () => {
    const body = {
      resource: "billing-mysql",
      task: { id: "BILL-1" },
      intent: { action: "read", tool: "mysql" },
      ttl: 60,
    };
    const lease = await c.checkoutAndReveal("a", body);
    expect(await mysqlLogin(myUser, lease.password)).toBe(true);
    expect((await c.http("DELETE", `/v1/leases/${lease.id}`, { token: lease.token })).status).toBe(202);
    await c.waitForAccounts("billing-mysql", "available");
    expect(await mysqlLogin(myUser, lease.password)).toBe(false);
    const rec = await c.vaultAccount("billing-mysql", myUser);
    expect(await mysqlLogin(myUser, rec.password)).toBe(true);
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

  it("no secret in the logs", () => {
    const logs = stack.sidecar.output();
    for (const s of c.secrets) expect(logs.includes(s)).toBe(false);
  });
});
