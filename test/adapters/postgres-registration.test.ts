import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdapterContext, AdapterError, type Credential } from "../../adapters/adapter.js";
import { type PostgresTarget, postgresAdapter, postgresConfig } from "../../adapters/postgres/index.js";
import { type ScramPostgres, startScramPostgres } from "../support/pg-cluster.js";
import { withSilentServer } from "../support/silent-server.js";
import { testPassword } from "./conformance.js";

// checkAccount against PostgreSQL's own rules for ALTER ROLE, with real roles of a private
// scram cluster; and errors that name the server and the admin.

let cluster: ScramPostgres;
let su: pg.Client;
let version = 0;
const run = randomBytes(3).toString("hex");
const roles: string[] = [];
const lines: string[] = [];

beforeAll(async () => {
  cluster = await startScramPostgres();
  su = new pg.Client({
    host: cluster.host,
    port: cluster.port,
    user: cluster.superuser.username,
    password: cluster.superuser.password,
    database: "postgres",
  });
  su.on("error", () => undefined);
  await su.connect();
  const { rows } = await su.query<{ v: number }>("select current_setting('server_version_num')::int as v");
  version = rows[0]?.v ?? 0;
});

afterAll(async () => {
  await postgresAdapter.close?.();
  for (const role of roles) await su.query(`DROP ROLE IF EXISTS "${role}"`).catch(() => undefined);
  await su?.end();
  await cluster?.stop();
});

function target(): PostgresTarget {
  return postgresConfig.parse({ host: cluster.host, port: cluster.port });
}

function ctx(admin: Credential | undefined): AdapterContext {
  const push = (o: object, m?: string) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`);
  return { admin, log: { debug: push, info: push, warn: push, error: push }, timeoutMs: 10_000 };
}

/** A role created by the superuser with these attributes (names are plain: no quoting needed). */
async function role(suffix: string, attributes: string): Promise<Credential> {
  const name = `lhr${run}_${suffix}`;
  const password = testPassword();
  await su.query(`CREATE ROLE "${name}" ${attributes} PASSWORD '${password}'`);
  roles.push(name);
  return { username: name, password };
}

async function check(account: string, admin: Credential | undefined) {
  return postgresAdapter.checkAccount?.(target(), account, ctx(admin));
}

describe("postgres checkAccount: ALTER ROLE's rules of this server version", () => {
  let createrole: Credential;
  let plainAdmin: Credential;
  let app: Credential;

  beforeAll(async () => {
    createrole = await role("createrole", "LOGIN CREATEROLE");
    plainAdmin = await role("plain", "LOGIN");
    app = await role("app", "LOGIN");
    // From PostgreSQL 16 a CREATEROLE admin needs ADMIN OPTION (the documented grant).
    if (version >= 160000)
      await su.query(`GRANT "${app.username}" TO "${createrole.username}" WITH ADMIN OPTION`);
  });

  it("a superuser admin may change any role", async () => {
    const superRole = await role("super1", "LOGIN SUPERUSER");
    expect(await check(superRole.username, cluster.superuser)).toEqual({ valid: true });
    expect(await check(app.username, cluster.superuser)).toEqual({ valid: true });
  });

  it("a CREATEROLE admin may change an ordinary role", async () => {
    expect(await check(app.username, createrole)).toEqual({ valid: true });
  });

  it("a CREATEROLE admin may not change a superuser role: the reason says why", async () => {
    const superRole = await role("super2", "LOGIN SUPERUSER");
    const verdict = await check(superRole.username, createrole);
    expect(verdict?.valid).toBe(false);
    const reason = verdict?.valid === false ? verdict.reason : "";
    expect(reason).toContain(`permission denied to alter role "${superRole.username}"`);
    expect(reason).toMatch(/SUPERUSER/);
    expect(reason).toContain(createrole.username);
    // PostgreSQL itself agrees: the ALTER ROLE the check predicts to fail does fail.
    const asAdmin = await connect(createrole);
    try {
      await expect(asAdmin.query(`ALTER ROLE "${superRole.username}" PASSWORD NULL`)).rejects.toThrow(
        /superuser/i,
      );
    } finally {
      await asAdmin.end();
    }
  });

  it("a CREATEROLE admin may not change a REPLICATION role", async () => {
    const repl = await role("repl", "LOGIN REPLICATION");
    const verdict = await check(repl.username, createrole);
    expect(verdict?.valid).toBe(false);
    expect(verdict?.valid === false ? verdict.reason : "").toMatch(/REPLICATION/);
  });

  it("an admin with neither SUPERUSER nor CREATEROLE may change no other role", async () => {
    const verdict = await check(app.username, plainAdmin);
    expect(verdict?.valid).toBe(false);
    expect(verdict?.valid === false ? verdict.reason : "").toMatch(/neither SUPERUSER nor CREATEROLE/);
    // ...but its own password, which any role may change.
    expect(await check(plainAdmin.username, plainAdmin)).toEqual({ valid: true });
  });

  it("a role that may not log in is refused: leasehold hands out passwords to log in with", async () => {
    const nologin = await role("nologin", "NOLOGIN");
    const verdict = await check(nologin.username, cluster.superuser);
    expect(verdict).toEqual({
      valid: false,
      reason: `role "${nologin.username}" is not permitted to log in (NOLOGIN)`,
    });
  });

  it("a missing role: PostgreSQL's words", async () => {
    const verdict = await check(`lhr${run}_app_orders_9`, createrole);
    expect(verdict).toEqual({ valid: false, reason: `role "lhr${run}_app_orders_9" does not exist` });
  });

  it("self mode cannot check without the account's password: it passes", async () => {
    expect(await check(`lhr${run}_anything`, undefined)).toEqual({ valid: true });
  });

  it("no password of any kind reached the log", () => {
    const text = lines.join("\n");
    for (const secret of [
      cluster.superuser.password,
      createrole.password,
      plainAdmin.password,
      app.password,
    ]) {
      expect(text).not.toContain(secret);
    }
  });
});

async function connect(cred: Credential): Promise<pg.Client> {
  const c = new pg.Client({
    host: cluster.host,
    port: cluster.port,
    user: cred.username,
    password: cred.password,
    database: "postgres",
  });
  c.on("error", () => undefined);
  await c.connect();
  return c;
}

describe("postgres errors name the server and the cause", () => {
  it("a wrong admin password: authentication failed for that admin, at that address", async () => {
    const wrong = testPassword();
    const err = await postgresAdapter
      .checkAccount?.(target(), "postgres", ctx({ username: "postgres", password: wrong }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    const e = err as AdapterError;
    expect(e.code).toBe("auth_failed");
    expect(e.retryable).toBe(false);
    expect(e.message).toBe(
      `postgres 127.0.0.1:${cluster.port}: login as admin "postgres": authentication failed (SQLSTATE 28P01)`,
    );
    expect(e.message).not.toContain(wrong);
  });

  it("a server that never answers: timed out after the call's bound", async () => {
    await withSilentServer(async (port) => {
      const err = await postgresAdapter
        .verify(
          postgresConfig.parse({ host: "127.0.0.1", port }),
          { username: "x", password: "y" },
          {
            ...ctx(undefined),
            timeoutMs: 300,
          },
        )
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AdapterError);
      expect((err as AdapterError).code).toBe("timeout");
      expect((err as AdapterError).message).toMatch(
        new RegExp(`^postgres 127\\.0\\.0\\.1:${port}: .*timed out`),
      );
    });
  });

  it("TLS asked of a server without it: the cause is said, the address named", async () => {
    const err = await postgresAdapter
      .verify(
        postgresConfig.parse({ host: cluster.host, port: cluster.port, ssl: true }),
        { username: "postgres", password: cluster.superuser.password },
        ctx(undefined),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).message).toMatch(
      new RegExp(
        `^postgres 127\\.0\\.0\\.1:${cluster.port}: verify: TLS handshake failed: the server does not offer TLS$`,
      ),
    );
    expect((err as AdapterError).message).not.toContain(cluster.superuser.password);
  });
});
