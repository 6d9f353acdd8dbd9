import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StackClient } from "../support/e2e-client.js";
import { redisLogin, startRedisServer, type TestRedisServer } from "../support/redis-server.js";
import { ldapLogin, startSlapd, type TestSlapd } from "../support/slapd.js";
import { type Stack, startStack } from "../support/stack.js";

/**
 * One resource of each remaining kind (OpenLDAP, Redis ACL, a DBA's exec script) registered
 * through the CLI, then checkout → reveal → login with the system's own client → check-in →
 * the old password refused. (PostgreSQL and MariaDB: whole-loop and dba-registration tests.)
 */

const POLICY = `@id("all-read")
permit (principal, action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"], resource)
when { context.intent == "read" };
`;
const FIXTURE = fileURLToPath(new URL("../fixtures/exec-adapter/store-passwords.mjs", import.meta.url));

let stack: Stack;
let c: StackClient;
let slapd: TestSlapd;
let rs: TestRedisServer;
let dir: string;
let execStore: string;

async function execLogin(account: string, password: string): Promise<boolean> {
  const { readFile } = await import("node:fs/promises");
  const store = JSON.parse(await readFile(execStore, "utf8")) as { accounts: Record<string, string> };
  return store.accounts[account] === password;
}

async function register(reg: Record<string, unknown> & { name: string }): Promise<void> {
  const file = join(stack.dir, `${reg.name}.yaml`);
  await writeFile(file, stringify(reg));
  const r = await stack.cli("resources", "register", "-f", file);
  expect(r.code, r.stderr).toBe(0);
  await c.waitForAccounts(reg.name, "available");
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-every-adapter-"));
  execStore = join(dir, "store.json");
  // The command is the operator's (leasehold.yaml); the registration only names it.
  const exec = {
    commands: { "store-passwords": { command: [process.execPath, FIXTURE, execStore], timeoutSeconds: 20 } },
  };
  [stack, slapd, rs] = await Promise.all([
    startStack({ policy: POLICY, config: { exec } }),
    startSlapd(),
    startRedisServer(),
  ]);
  c = new StackClient(stack);
  await slapd.addUser("svc_reports", "initial-ldap-123456");
  await rs.addUser("svc_cache", "initial-redis-123456");
  const execAdmin = { username: "dba", password: "exec-admin-123456789" };
  await writeFile(
    execStore,
    JSON.stringify({ admin: execAdmin, accounts: { mainframe_1: "initial-exec-123456" }, sessions: {} }),
    {
      mode: 0o600,
    },
  );
  c.secrets.push(slapd.rotator.password, rs.admin.password, execAdmin.password);
  await register({
    name: "people-ldap",
    adapter: "ldap",
    connection: { url: slapd.url, accountDn: slapd.accountDnTemplate },
    admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
    accounts: ["svc_reports"],
  });
  await register({
    name: "cache-redis",
    adapter: "redis-acl",
    connection: { host: "127.0.0.1", port: rs.port },
    admin: rs.admin,
    accounts: ["svc_cache"],
  });
  await register({
    name: "mainframe",
    adapter: "exec",
    connection: { command: "store-passwords" },
    admin: execAdmin,
    accounts: ["mainframe_1"],
  });
}, 180_000);

afterAll(async () => {
  await stack?.close();
  await slapd?.stop();
  await rs?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const cases = [
  {
    resource: "people-ldap",
    account: "svc_reports",
    initial: "initial-ldap-123456",
    login: (a: string, p: string) => ldapLogin(slapd, a, p),
  },
  {
    resource: "cache-redis",
    account: "svc_cache",
    initial: "initial-redis-123456",
    login: (a: string, p: string) => redisLogin(rs, a, p),
  },
  {
    resource: "mainframe",
    account: "mainframe_1",
    initial: "initial-exec-123456",
    login: (a: string, p: string) => execLogin(a, p),
  },
];

describe("every adapter through the CLI and the HTTP API", () => {
  for (const k of cases) {
    it(`${k.resource}: the import rotation retired the DBA's password; checkout, login, check-in, old password refused`, async () => {
      expect(await k.login(k.account, k.initial)).toBe(false);
      const body = { resource: k.resource, task: { id: "ADP-1" }, intent: { action: "read" }, ttl: 60 };
      const lease = await c.checkoutAndReveal("a", body);
      expect(await k.login(k.account, lease.password)).toBe(true);
      expect((await c.http("DELETE", `/v1/leases/${lease.id}`, { token: lease.token })).status).toBe(202);
      await c.waitForAccounts(k.resource, "available");
      expect(await k.login(k.account, lease.password)).toBe(false);
      const rec = await c.vaultAccount(k.resource, k.account);
      expect(await k.login(k.account, rec.password)).toBe(true);
    });
  }

  it("no secret reached the sidecar's logs", () => {
    const logs = stack.sidecar.output();
    for (const s of c.secrets) expect(logs.includes(s)).toBe(false);
  });
});
