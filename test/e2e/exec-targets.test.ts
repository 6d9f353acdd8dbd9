import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StackClient } from "../support/e2e-client.js";
import { createMariadbAccountAndAdmin, dropMariadbAccounts, mariadbLogin } from "../support/mariadb.js";
import { startRedisServer, type TestRedisServer } from "../support/redis-server.js";
import { startSlapd, type TestSlapd } from "../support/slapd.js";
import { spawnCli } from "../support/sidecar-process.js";
import { agentsReadPolicy, type Stack, startStack } from "../support/stack.js";

/**
 * `leasehold exec` with the MariaDB client and redis-cli: each gets the leased account in its
 * own variables (MYSQL_HOST MYSQL_TCP_PORT USER MYSQL_PWD MYSQL_HOME; REDISCLI_AUTH, REDIS_USER), logs
 * in with nothing secret on its command line, and the account's password is rotated after.
 */

const tag = randomBytes(3).toString("hex");
const MY_USER = `lh_exec_${tag}`;
const MY_ADMIN = `lh_exec_admin_${tag}`;
const REDIS_USER = "svc_cache";
const SEALED_USER = "svc_sealed";
const LDAP_USER = "svc_reports";
const SEALED_LDAP_USER = "svc_sealed_ldap";
const POLICY = agentsReadPolicy([
  "reports-mysql",
  "cache-redis",
  "sealed-redis",
  "people-ldap",
  "sealed-ldap",
]);

let stack: Stack;
let c: StackClient;
let rs: TestRedisServer;
let slapd: TestSlapd;

/** Runs `leasehold exec` for agent a to completion. */
async function exec(
  resource: string,
  command: string[],
  extra: string[] = [],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: stack.dir,
    LANG: "C",
    LEASEHOLD_ADDR: stack.sidecar.url,
    LEASEHOLD_AGENT_KEY: await c.keyFile("a"),
  };
  const args = [
    "exec",
    "--resource",
    resource,
    "--task",
    "EXEC-2",
    "--intent",
    "read",
    ...extra,
    "--",
    ...command,
  ];
  return spawnCli(args, env).result;
}

/** The child's environment and argv, written by `sh -c` before it runs `then`. */
function probe(name: string, then: string): { env: string; argv: string; command: string[] } {
  const env = join(stack.dir, `${name}.env`);
  const argv = join(stack.dir, `${name}.argv`);
  return { env, argv, command: ["sh", "-c", `env > '${env}'; cat /proc/$$/cmdline > '${argv}'; ${then}`] };
}

async function readEnv(file: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const line of (await readFile(file, "utf8")).split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  if (out.LEASEHOLD_PASSWORD) c.secrets.push(out.LEASEHOLD_PASSWORD);
  return out;
}

async function register(reg: Record<string, unknown> & { name: string }): Promise<void> {
  const file = join(stack.dir, `${reg.name}.yaml`);
  await writeFile(file, stringify(reg));
  const r = await stack.cli("resources", "register", "-f", file);
  expect(r.code, r.stderr).toBe(0);
  await c.waitForAccounts(reg.name, "available");
}

beforeAll(async () => {
  [stack, rs, slapd] = await Promise.all([startStack({ policy: POLICY }), startRedisServer(), startSlapd()]);
  c = new StackClient(stack);
  await createMariadbAccountAndAdmin(
    { name: MY_USER, password: "initial-mysql-123456" },
    { name: MY_ADMIN, password: "admin-mysql-1234567" },
  );
  await rs.addUser(REDIS_USER, "initial-redis-123456");
  await rs.addUser(SEALED_USER, "initial-redis-654321");
  await slapd.addUser(LDAP_USER, "initial-ldap-123456");
  await slapd.addUser(SEALED_LDAP_USER, "initial-ldap-654321");
  c.secrets.push("initial-ldap-123456", "initial-ldap-654321", slapd.rotator.password);
  c.secrets.push(
    "initial-mysql-123456",
    "admin-mysql-1234567",
    "initial-redis-123456",
    "initial-redis-654321",
    rs.admin.password,
  );
  await register({
    name: "reports-mysql",
    adapter: "mysql",
    connection: { host: "127.0.0.1", port: 3306 },
    admin: { username: MY_ADMIN, password: "admin-mysql-1234567" },
    accounts: [MY_USER],
  });
  await register({
    name: "cache-redis",
    adapter: "redis-acl",
    connection: { host: "127.0.0.1", port: rs.port },
    admin: rs.admin,
    accounts: [REDIS_USER],
  });
  await register({
    name: "sealed-redis",
    adapter: "redis-acl",
    connection: { host: "127.0.0.1", port: rs.port },
    admin: rs.admin,
    accounts: [SEALED_USER],
    reveal: false,
    proxy: { port: 0 },
  });
  await register({
    name: "people-ldap",
    adapter: "ldap",
    connection: { url: slapd.url, accountDn: slapd.accountDnTemplate },
    admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
    accounts: [LDAP_USER],
  });
  await register({
    name: "sealed-ldap",
    adapter: "ldap",
    connection: { url: slapd.url, accountDn: slapd.accountDnTemplate },
    admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
    accounts: [SEALED_LDAP_USER],
    reveal: false,
    proxy: { port: 0 },
  });
}, 180_000);

afterAll(async () => {
  await stack?.close();
  await rs?.stop();
  await slapd?.stop();
  await dropMariadbAccounts(MY_USER, MY_ADMIN);
});

describe("leasehold exec with the MariaDB client and redis-cli", () => {
  it("mysql logs in from MYSQL_HOST, MYSQL_TCP_PORT, MYSQL_PWD and the user in MYSQL_HOME; rotated after", async () => {
    const p = probe("mysql", "exec mysql -N -B -e 'select current_user()'");
    const r = await exec("reports-mysql", p.command);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`${MY_USER}@%`);
    const env = await readEnv(p.env);
    expect(env).toMatchObject({ MYSQL_HOST: "127.0.0.1", MYSQL_TCP_PORT: "3306", USER: MY_USER });
    expect(env.MYSQL_PWD).toBe(env.LEASEHOLD_PASSWORD);
    expect((await readFile(p.argv, "utf8")).includes(env.MYSQL_PWD ?? "")).toBe(false);
    // The client reads its user from MYSQL_HOME's my.cnf (it ignores USER on Unix); gone after exit.
    expect(env.MYSQL_HOME).toBe(env.MARIADB_HOME);
    expect(existsSync(env.MYSQL_HOME ?? "")).toBe(false);
    await c.waitForAccounts("reports-mysql", "available");
    expect(await mariadbLogin(MY_USER, env.MYSQL_PWD ?? "")).toBe(false);
  });

  it("redis-cli authenticates with REDISCLI_AUTH as REDIS_USER; REDIS_URL names the same account", async () => {
    const p = probe(
      "redis",
      'exec redis-cli -p "$LEASEHOLD_PORT" --user "$REDIS_USER" --no-auth-warning ping',
    );
    const r = await exec("cache-redis", p.command);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("PONG");
    const env = await readEnv(p.env);
    expect(env.REDIS_USER).toBe(REDIS_USER);
    expect(env.REDISCLI_AUTH).toBe(env.LEASEHOLD_PASSWORD);
    const url = new URL(env.REDIS_URL ?? "");
    expect(url.protocol).toBe("redis:");
    expect(url.port).toBe(String(rs.port));
    expect(decodeURIComponent(url.username)).toBe(REDIS_USER);
    expect(decodeURIComponent(url.password)).toBe(env.REDISCLI_AUTH);
    expect((await readFile(p.argv, "utf8")).includes(env.REDISCLI_AUTH ?? "")).toBe(false);
    await c.waitForAccounts("cache-redis", "available");
    // The rotated password refuses: the same redis-cli call with the old one fails.
    const again = spawn(
      "redis-cli",
      ["-p", String(rs.port), "--user", REDIS_USER, "--no-auth-warning", "ping"],
      {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", REDISCLI_AUTH: env.REDISCLI_AUTH ?? "" },
      },
    );
    let out = "";
    again.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    await new Promise((res) => again.once("close", res));
    expect(out).not.toContain("PONG");
  });

  it("proxy mode: redis-cli logs in at the listener with the lease id and the lease token", async () => {
    const p = probe(
      "sealed",
      'exec redis-cli -h "$LEASEHOLD_HOST" -p "$LEASEHOLD_PORT" --user "$REDIS_USER" --no-auth-warning ping',
    );
    const r = await exec("sealed-redis", p.command, ["--tool", "redis-cli"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("PONG");
    const env = await readEnv(p.env);
    c.secrets.push(env.REDISCLI_AUTH ?? "");
    expect(env.REDIS_USER).toBe(env.LEASEHOLD_LEASE_ID);
    expect(env.LEASEHOLD_PORT).not.toBe(String(rs.port));
    expect((await readFile(p.argv, "utf8")).includes(env.REDISCLI_AUTH ?? "")).toBe(false);
    const l = await c.http("GET", `/v1/leases/${env.LEASEHOLD_LEASE_ID}`, { token: await c.adminToken() });
    expect(l.json.lease ?? l.json).toMatchObject({ state: "ended", end_reason: "checkin" });
  });

  it("ldapwhoami binds with LDAPURI and LDAPBINDDN, the password read from LDAPBINDPW by a file descriptor", async () => {
    const p = probe("ldap", 'exec bash -c \'ldapwhoami -x -D "$LDAPBINDDN" -y <(printf %s "$LDAPBINDPW")\'');
    const r = await exec("people-ldap", p.command);
    expect(r.code, r.stderr).toBe(0);
    const env = await readEnv(p.env);
    expect(env.LDAPURI).toBe(slapd.url);
    expect(env.LDAPBINDDN).toBe(slapd.accountDnTemplate.replace("{account}", LDAP_USER));
    expect(r.stdout.trim().toLowerCase()).toBe(`dn:${env.LDAPBINDDN?.toLowerCase()}`);
    expect(env.LDAPBINDPW).toBe(env.LEASEHOLD_PASSWORD);
    expect((await readFile(p.argv, "utf8")).includes(env.LDAPBINDPW ?? "")).toBe(false);
    await c.waitForAccounts("people-ldap", "available");
    // Rotated after check-in: the same bind with the password the command saw is refused.
    const again = spawn(
      "bash",
      ["-c", 'ldapwhoami -x -H "$LDAPURI" -D "$LDAPBINDDN" -y <(printf %s "$LDAPBINDPW")'],
      {
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          LDAPURI: env.LDAPURI,
          LDAPBINDDN: env.LDAPBINDDN,
          LDAPBINDPW: env.LDAPBINDPW,
        },
        stdio: "ignore",
      },
    );
    expect(await new Promise((res) => again.once("close", res))).toBe(49);
  });

  it("ldapwhoami through the listener of a sealed ldap resource: cn=<lease id> and the token, bound as the account", async () => {
    const p = probe(
      "sealed-ldap",
      'exec bash -c \'ldapwhoami -x -H "$LDAPURI" -D "$LDAPBINDDN" -y <(printf %s "$LDAPBINDPW")\'',
    );
    const r = await exec("sealed-ldap", p.command, ["--tool", "ldapwhoami"]);
    expect(r.code, r.stderr).toBe(0);
    const env = await readEnv(p.env);
    c.secrets.push(env.LDAPBINDPW ?? "");
    expect(env.LDAPBINDDN).toBe(`cn=${env.LEASEHOLD_LEASE_ID}`);
    expect(env.LDAPURI).toBe(`ldap://127.0.0.1:${env.LEASEHOLD_PORT}`);
    expect(env.LDAPURI).not.toBe(slapd.url);
    expect(r.stdout.trim()).toBe(`dn:uid=${SEALED_LDAP_USER},${slapd.peopleDn}`);
    expect((await readFile(p.argv, "utf8")).includes(env.LDAPBINDPW ?? "")).toBe(false);
  });

  it("no password reached the sidecar's output or the audit file", async () => {
    const logs = stack.sidecar.output();
    const audit = await readFile(join(stack.dir, "state", "audit.jsonl"), "utf8");
    expect(c.secrets.length).toBeGreaterThan(4);
    for (const s of c.secrets) {
      expect(logs.includes(s)).toBe(false);
      expect(audit.includes(s)).toBe(false);
    }
  });
});
