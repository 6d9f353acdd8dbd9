import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Connection } from "mysql2/promise";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterIdentity } from "../../sidecar/cluster/index.js";
import { parseConfig } from "../../sidecar/config.js";
import { type DoctorCheck, runDoctor } from "../../sidecar/doctor/index.js";
import { checkNode } from "../../sidecar/doctor/local-checks.js";
import { createLogger } from "../../sidecar/logger.js";
import { createRedis, redisProblem } from "../../sidecar/redis.js";
import { ResourceCatalog } from "../../sidecar/resources/catalog.js";
import { vaultPaths } from "../../sidecar/resources/vault-paths.js";
import { createMariadbAccount, dropMariadbAccount, mariadbLogin, mariadbRoot } from "../support/mariadb.js";
import { startScramPostgres } from "../support/pg-cluster.js";
import { startRedisServer, type TestRedisServer } from "../support/redis-server.js";
import { dropPrefix, testPrefix } from "../support/redis.js";
import { repoRoot } from "../support/sidecar-process.js";
import { testVaultStore, useVault, type VaultHandle, vaultCall } from "../support/vault.js";

const run = promisify(execFile);
const MAIN = join(repoRoot(), "sidecar/cli/main.ts");

/** A token holding only `policy` (written under a fresh name) and Vault's default policy. */
async function tokenWithPolicy(vault: VaultHandle, hcl: string): Promise<string> {
  const name = `doctor-${randomBytes(4).toString("hex")}`;
  expect(
    (await vaultCall(vault, vault.token, "PUT", `sys/policy/${name}`, { policy: hcl })).status,
  ).toBeLessThan(300);
  const created = await vaultCall(vault, vault.token, "POST", "auth/token/create", {
    policies: [name],
    ttl: "1h",
  });
  return String((created.json.auth as { client_token?: string }).client_token);
}

function line(checks: readonly DoctorCheck[], pattern: RegExp): DoctorCheck {
  const found = checks.find((c) => pattern.test(c.check));
  if (!found) throw new Error(`no check matching ${pattern}: ${checks.map((c) => c.check).join("; ")}`);
  return found;
}

/**
 * `leasehold doctor` against real services: a private password-protected Redis with the durable
 * settings, the Vault dev server with a token holding deploy/vault-policy.hcl, and a MariaDB
 * resource; then each fault the issue names (Redis without a password, a token lacking a
 * capability, an admin that lost its rights).
 */
describe("leasehold doctor", () => {
  let vault: VaultHandle;
  let redis: TestRedisServer;
  let root: Connection;
  let dir: string;
  let goodToken: string;
  const vaultPrefix = `doctor-${randomBytes(4).toString("hex")}`;
  const redisPrefix = testPrefix("doctor");
  const suffix = randomBytes(3).toString("hex");
  const adminUser = `lh_doc_adm_${suffix}`;
  const appUser = `lh_doc_app_${suffix}`;
  const adminPassword = `Adm-${randomBytes(12).toString("base64url")}`;
  const appPassword = `App-${randomBytes(12).toString("base64url")}`;
  const env = (over: Record<string, string> = {}) => ({
    ...process.env,
    DOCTOR_REDIS_PASSWORD: redis.root.password,
    DOCTOR_VAULT_TOKEN: goodToken,
    ...over,
  });

  /** Writes a config file; `redisUrl` and `token` default to the healthy setup's. */
  async function configFile(name: string, redisUrl?: string, auth?: string): Promise<string> {
    const file = join(dir, `${name}.yaml`);
    const text = [
      "redis:",
      `  url: ${redisUrl ?? `redis://default:\${DOCTOR_REDIS_PASSWORD}@127.0.0.1:${redis.port}/0`}`,
      `  prefix: "${redisPrefix}"`,
      "vault:",
      `  address: ${vault.address}`,
      `  mount: ${vault.mount}`,
      `  prefix: ${vaultPrefix}`,
      `  auth: ${auth ?? '{ method: token, token: "${DOCTOR_VAULT_TOKEN}" }'}`,
      "identity: { audience: leasehold }",
      "policy: { file: ./policy.cedar }",
      "audit: { file: ./state/audit.jsonl }",
      "tokens: { signingKey: ./state/signing.jwk }",
      "admin: { tokenFile: ./state/admin.token }",
    ].join("\n");
    await writeFile(file, `${text}\n`);
    return file;
  }

  /** A registration and its admin record in Vault, as `leasehold resources register` leaves them. */
  async function registerInVault(
    name: string,
    adapter: string,
    connection: Record<string, unknown>,
    admin: { username: string; password: string },
    account: string,
  ): Promise<void> {
    const secrets = testVaultStore(vault, vaultPrefix);
    try {
      await new ResourceCatalog(secrets).put({
        name,
        adapter,
        connection,
        rotateWith: "admin",
        admin: { username: admin.username },
        accounts: [account],
        reveal: true,
        lease: { defaultTtl: 300, maxTtl: 3600 },
        rotation: { length: 32, terminateSessions: true, exclude: "" },
        groups: [],
        registered_at: new Date().toISOString(),
      });
      await secrets.write(vaultPaths.admin(name), admin);
    } finally {
      secrets.close();
    }
  }

  beforeAll(async () => {
    [vault, redis, root] = await Promise.all([useVault(), startRedisServer(), mariadbRoot()]);
    const su = await redis.rootConnection();
    for (const [k, v] of [
      ["appendonly", "yes"],
      ["appendfsync", "everysec"],
      ["maxmemory-policy", "noeviction"],
    ]) {
      await su.config("SET", k as string, v as string);
    }
    su.disconnect();
    const hcl = (await readFile(join(repoRoot(), "deploy/vault-policy.hcl"), "utf8"))
      .replaceAll('"secret/', `"${vault.mount}/`)
      .replaceAll("/leasehold/", `/${vaultPrefix}/`);
    goodToken = await tokenWithPolicy(vault, hcl);

    dir = await mkdtemp(join(tmpdir(), "lh-doctor-"));
    await mkdir(join(dir, "state"), { mode: 0o700 });
    await writeFile(join(dir, "state", "signing.jwk"), "{}", { mode: 0o600 });
    await writeFile(join(dir, "state", "admin.token"), `${randomBytes(32).toString("hex")}\n`, {
      mode: 0o600,
    });
    await writeFile(
      join(dir, "policy.cedar"),
      'permit (principal, action == Action::"checkout", resource);\n',
    );

    // The MariaDB target: an admin that may change passwords, one managed account.
    await dropMariadbAccount(root, adminUser);
    await dropMariadbAccount(root, appUser);
    await createMariadbAccount(root, adminUser, adminPassword);
    await root.query(`GRANT CREATE USER ON *.* TO '${adminUser}'@'%'`);
    await createMariadbAccount(root, appUser, appPassword);

    // Its registration and admin record in Vault, and the cluster id in Vault and Redis, as a
    // sidecar's first start and a registration leave them.
    const secrets = testVaultStore(vault, vaultPrefix);
    await registerInVault(
      "doctor-db",
      "mysql",
      { host: "127.0.0.1", port: 3306 },
      { username: adminUser, password: adminPassword },
      appUser,
    );
    const config = parseConfig(
      {
        redis: {
          url: `redis://default:${redis.root.password}@127.0.0.1:${redis.port}/0`,
          prefix: redisPrefix,
        },
        vault: { address: vault.address, auth: { method: "token", token: vault.token }, prefix: vaultPrefix },
        identity: {},
      },
      dir,
    );
    const client = createRedis(config.redis, createLogger("silent"));
    const cluster = new ClusterIdentity({
      secrets,
      redis: client,
      redisPrefix,
      names: { vault: "vault", redis: "redis" },
      log: createLogger("silent"),
    });
    expect(await redisProblem(client, { waitMs: 10_000 })).toBeUndefined();
    expect(await cluster.check()).toMatchObject({ status: "ok" });
    client.disconnect();
    secrets.close();
  });

  afterAll(async () => {
    if (root) {
      await dropMariadbAccount(root, adminUser).catch(() => undefined);
      await dropMariadbAccount(root, appUser).catch(() => undefined);
      await root.end();
    }
    await dropPrefix(redisPrefix);
    await redis?.stop();
    await vault?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("passes a healthy setup: every line ok, exit 0, and no secret in the output", async () => {
    const file = await configFile("healthy");
    const checks = await runDoctor({ configFile: file, env: env() });
    expect(checks.filter((c) => c.status !== "ok")).toEqual([]);
    expect(line(checks, /authentication$/).detail).toMatch(/^on/);
    expect(line(checks, /account lh_doc_app/).detail).toMatch(/admin may change its password/);
    for (const key of ["appendonly", "appendfsync", "maxmemory-policy"]) {
      expect(line(checks, new RegExp(` ${key}$`)).status).toBe("ok");
    }
    expect(line(checks, /capabilities on .*\/metadata\//).detail).toBe("has list, delete");

    const { stdout, stderr } = await run(
      process.execPath,
      ["--import", "tsx", MAIN, "--config", file, "doctor"],
      {
        env: env(),
        cwd: repoRoot(),
      },
    );
    expect(stdout).toMatch(/^ok {3}config /m);
    expect(stdout).toMatch(/all \d+ checks ok/);
    for (const secret of [redis.root.password, goodToken, adminPassword]) {
      expect(stdout + stderr).not.toContain(secret);
    }
  });

  it("fails a Redis that answers without a password (the local one), with the fix, and names the cluster mismatch", async () => {
    const file = await configFile("open-redis", "redis://127.0.0.1:6379/0");
    const checks = await runDoctor({ configFile: file, env: env() });
    const auth = line(checks, /authentication$/);
    expect(auth.status).toBe("FAIL");
    expect(auth.detail).toMatch(/without a password/);
    expect(auth.fix).toMatch(/requirepass/);
    // This Redis keyspace holds no cluster id while Vault's prefix has one.
    const cluster = line(checks, /^cluster identity$/);
    expect(cluster.status).toBe("FAIL");
    expect(cluster.fix).toMatch(/leasehold cluster adopt/);

    const json = await run(
      process.execPath,
      ["--import", "tsx", MAIN, "--config", file, "--json", "doctor"],
      {
        env: env(),
        cwd: repoRoot(),
      },
    ).then(
      () => undefined,
      (err: { code?: number; stdout?: string }) => err,
    );
    expect(json?.code).toBe(1);
    const report = JSON.parse(json?.stdout ?? "{}") as { ok: boolean; checks: DoctorCheck[] };
    expect(report.ok).toBe(false);
    expect(report.checks.find((c) => /authentication$/.test(c.check))?.status).toBe("FAIL");
  });

  it("fails a Vault token that lacks a capability the policy must grant, naming it and the fix", async () => {
    const narrow = await tokenWithPolicy(
      vault,
      `path "${vault.mount}/data/${vaultPrefix}/*" { capabilities = ["create", "read", "update"] }\npath "${vault.mount}/metadata/${vaultPrefix}/*" { capabilities = ["list"] }\n`,
    );
    const file = await configFile("narrow-token");
    const checks = await runDoctor({ configFile: file, env: env({ DOCTOR_VAULT_TOKEN: narrow }) });
    expect(line(checks, /capabilities on .*\/data\//).status).toBe("ok");
    const meta = line(checks, /capabilities on .*\/metadata\//);
    expect(meta.status).toBe("FAIL");
    expect(meta.detail).toBe("missing delete (has list)");
    expect(meta.fix).toContain("deploy/vault-policy.hcl");
    expect(JSON.stringify(checks)).not.toContain(narrow);
  });

  it("warns 'cannot check' when CONFIG GET is refused, as on a managed Redis", async () => {
    const user = `doctor-${suffix}`;
    const password = randomBytes(12).toString("base64url");
    await redis.addUser(user, password);
    try {
      const file = await configFile(
        "managed",
        `redis://${user}:\${DOCTOR_USER_PASSWORD}@127.0.0.1:${redis.port}/0`,
      );
      const checks = await runDoctor({ configFile: file, env: env({ DOCTOR_USER_PASSWORD: password }) });
      expect(line(checks, /authentication$/).status).toBe("ok");
      const aof = line(checks, / appendonly$/);
      expect(aof.status).toBe("warn");
      expect(aof.detail).toMatch(/^cannot check: CONFIG GET refused/);
      expect(JSON.stringify(checks)).not.toContain(password);
    } finally {
      await redis.deleteUser(user);
    }
  });

  it("fails a Node older than package.json's engines floor", async () => {
    expect((await checkNode("v18.19.0")).status).toBe("FAIL");
    expect((await checkNode("v20.18.9")).fix).toMatch(/install Node 20\.19/);
    expect((await checkNode("v22.0.0")).status).toBe("ok");
  });

  it("logs in with AppRole as the sidecar would, and fails a wrong secret id naming what to fix", async () => {
    const policy = `doctor-approle-${suffix}`;
    const hcl = (await readFile(join(repoRoot(), "deploy/vault-policy.hcl"), "utf8"))
      .replaceAll('"secret/', `"${vault.mount}/`)
      .replaceAll("/leasehold/", `/${vaultPrefix}/`);
    expect(
      (await vaultCall(vault, vault.token, "PUT", `sys/policy/${policy}`, { policy: hcl })).status,
    ).toBeLessThan(300);
    const role = `doctor-${suffix}`;
    expect(
      (await vaultCall(vault, vault.token, "POST", `auth/approle/role/${role}`, { token_policies: [policy] }))
        .status,
    ).toBeLessThan(300);
    const roleId = String(
      (
        (await vaultCall(vault, vault.token, "GET", `auth/approle/role/${role}/role-id`)).json.data as {
          role_id: string;
        }
      ).role_id,
    );
    const secretId = String(
      (
        (await vaultCall(vault, vault.token, "POST", `auth/approle/role/${role}/secret-id`)).json.data as {
          secret_id: string;
        }
      ).secret_id,
    );
    const auth = '{ method: approle, roleId: "${DOCTOR_ROLE_ID}", secretId: "${DOCTOR_SECRET_ID}" }';
    const file = await configFile("approle", undefined, auth);

    const good = await runDoctor({
      configFile: file,
      env: env({ DOCTOR_ROLE_ID: roleId, DOCTOR_SECRET_ID: secretId }),
    });
    expect(line(good, /login \(approle\)$/).status).toBe("ok");
    expect(line(good, /^vault .* token$/).detail).toContain(policy);
    expect(line(good, /capabilities on .*\/metadata\//).status).toBe("ok");

    const wrong = `wrong-${randomBytes(8).toString("hex")}`;
    const bad = await runDoctor({
      configFile: file,
      env: env({ DOCTOR_ROLE_ID: roleId, DOCTOR_SECRET_ID: wrong }),
    });
    const login = line(bad, /login \(approle\)$/);
    expect(login.status).toBe("FAIL");
    expect(login.fix).toMatch(/roleId and secretId/);
    expect(JSON.stringify(bad)).not.toContain(wrong);
    expect(JSON.stringify([...good, ...bad])).not.toContain(secretId);
  });

  it("fails a config that does not parse, naming the key", async () => {
    const file = join(dir, "bad.yaml");
    await writeFile(
      file,
      "vault: { auth: { method: token, token: x } }\nidentity: {}\nredis: { prefx: a }\n",
    );
    const checks = await runDoctor({ configFile: file, env: env() });
    const config = line(checks, /^config /);
    expect(config.status).toBe("FAIL");
    expect(config.detail).toMatch(/redis/);
    expect(config.detail).toMatch(/prefx/);
  });

  it("fails a secret file others may read, with the chmod that fixes it", async () => {
    const file = await configFile("loose-key");
    const { chmod } = await import("node:fs/promises");
    const key = join(dir, "state", "admin.token");
    await chmod(key, 0o644);
    try {
      const c = line(await runDoctor({ configFile: file, env: env() }), /^admin token /);
      expect(c.status).toBe("FAIL");
      expect(c.fix).toBe(`chmod 600 ${key}`);
    } finally {
      await chmod(key, 0o600);
    }
  });

  it("fails a target whose admin lost its rights (dry run: the account's password is unchanged)", async () => {
    await root.query(`REVOKE CREATE USER ON *.* FROM '${adminUser}'@'%'`);
    const file = await configFile("revoked");
    const checks = await runDoctor({ configFile: file, env: env() });
    expect(line(checks, /resource doctor-db admin/).status).toBe("ok");
    const account = line(checks, /resource doctor-db account/);
    expect(account.status).toBe("FAIL");
    expect(account.detail).toMatch(/CREATE USER/);
    expect(account.fix).toMatch(/grant the admin/);
    // Nothing was changed on the target: both passwords still log in.
    expect(await mariadbLogin(appUser, appPassword)).toBe(true);
    expect(await mariadbLogin(adminUser, adminPassword)).toBe(true);
  });

  it("fails a PostgreSQL target whose admin lost CREATEROLE (dry run: nothing changes)", async () => {
    const server = await startScramPostgres();
    const su = new pg.Client({
      host: server.host,
      port: server.port,
      user: "postgres",
      password: server.superuser.password,
      database: "postgres",
    });
    await su.connect();
    try {
      const admin = { username: "doctor_pg_admin", password: randomBytes(15).toString("base64url") };
      const appPw = randomBytes(15).toString("base64url");
      await su.query(`CREATE ROLE doctor_pg_admin LOGIN CREATEROLE PASSWORD '${admin.password}'`);
      await su.query(`CREATE ROLE doctor_pg_app LOGIN PASSWORD '${appPw}'`);
      await su.query("GRANT doctor_pg_app TO doctor_pg_admin WITH ADMIN OPTION");
      await registerInVault(
        "doctor-pg",
        "postgres",
        { host: server.host, port: server.port },
        admin,
        "doctor_pg_app",
      );
      const file = await configFile("postgres");
      const before = await runDoctor({ configFile: file, env: env() });
      expect(line(before, /resource doctor-pg admin/).status).toBe("ok");
      expect(line(before, /resource doctor-pg account/).status).toBe("ok");

      await su.query("ALTER ROLE doctor_pg_admin NOCREATEROLE");
      const after = await runDoctor({ configFile: file, env: env() });
      const account = line(after, /resource doctor-pg account/);
      expect(account.status).toBe("FAIL");
      expect(account.detail).toMatch(/CREATEROLE/);
      expect(JSON.stringify(after)).not.toContain(admin.password);
      const login = new pg.Client({
        host: server.host,
        port: server.port,
        user: "doctor_pg_app",
        password: appPw,
        database: "postgres",
      });
      await login.connect();
      await login.end();
    } finally {
      await su.end();
      await server.stop();
      const secrets = testVaultStore(vault, vaultPrefix);
      await new ResourceCatalog(secrets).remove("doctor-pg").finally(() => secrets.close());
    }
  });
});
