import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdapterContext, AdapterError } from "../../adapters/adapter.js";
import {
  checkRoleName,
  type PostgresTarget,
  postgresAdapter,
  postgresConfig,
  quoteIdent,
  quoteLiteral,
  scramSha256Verifier,
} from "../../adapters/postgres/index.js";
import { freePort } from "../support/free-port.js";
import { type ScramPostgres, startScramPostgres } from "../support/pg-cluster.js";
import { adminSessionChecks } from "./admin-session-checks.js";
import { adapterConformance, testPassword } from "./conformance.js";
import { withSilentServer } from "../support/silent-server.js";

let cluster: ScramPostgres;

beforeAll(async () => {
  // One private cluster per file; every statement is logged so the log test can read them.
  cluster = await startScramPostgres({ settings: { log_statement: "all" } });
});

afterAll(async () => {
  await cluster?.stop();
});

function target(): PostgresTarget {
  return postgresConfig.parse({ host: cluster.host, port: cluster.port });
}

async function superuserClient(): Promise<pg.Client> {
  const client = new pg.Client({
    host: cluster.host,
    port: cluster.port,
    user: cluster.superuser.username,
    password: cluster.superuser.password,
    database: "postgres",
  });
  client.on("error", () => undefined);
  await client.connect();
  return client;
}

/** CREATE ROLE quoted by the server's own format(%I, %L): independent of the adapter's quoting. */
async function createRole(client: pg.Client, name: string, password: string): Promise<void> {
  const { rows } = await client.query<{ sql: string }>(
    "select format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text) as sql",
    [name, password],
  );
  const sql = rows[0]?.sql;
  if (sql === undefined) throw new Error("format() returned nothing");
  await client.query(sql);
}

async function dropRole(client: pg.Client, name: string): Promise<void> {
  const { rows } = await client.query<{ sql: string }>(
    "select format('DROP ROLE IF EXISTS %I', $1::text) as sql",
    [name],
  );
  if (rows[0]) await client.query(rows[0].sql);
}

adapterConformance({
  name: "postgres",
  adapter: postgresAdapter,
  async setup() {
    const admin = await superuserClient();
    const closedPort = await freePort();
    return {
      target: target(),
      admin: { username: cluster.superuser.username, password: cluster.superuser.password },
      createAccount: (name, password) => createRole(admin, name, password),
      dropAccount: (name) => dropRole(admin, name),
      unreachableTarget: postgresConfig.parse({ host: "127.0.0.1", port: closedPort }),
      unreachableAddress: `127.0.0.1:${closedPort}`,
      targetVia: (host, port) => postgresConfig.parse({ host, port: port ?? cluster.port }),
      async openSession(name, password) {
        const client = new pg.Client({
          host: cluster.host,
          port: cluster.port,
          user: name,
          password,
          database: "postgres",
        });
        client.on("error", () => undefined);
        await client.connect();
        return {
          async alive() {
            try {
              await client.query("select 1");
              return true;
            } catch {
              return false;
            }
          },
          close: () => client.end().catch(() => undefined),
        };
      },
      teardown: () => admin.end(),
    };
  },
});

adminSessionChecks({
  name: "postgres",
  adapter: postgresAdapter,
  selfRotation: true,
  async setup() {
    const su = await superuserClient();
    const username = `lhp${randomBytes(3).toString("hex")}_admin`;
    const password = testPassword();
    await createRole(su, username, password);
    await su.query(`ALTER ROLE ${quoteIdent(username)} CREATEROLE`);
    const [version] = (
      await su.query<{ v: number }>("select current_setting('server_version_num')::int as v")
    ).rows;
    const setPassword = async (role: string, pw: string) => {
      const { rows } = await su.query<{ sql: string }>(
        "select format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text) as sql",
        [role, pw],
      );
      if (rows[0]) await su.query(rows[0].sql);
    };
    return {
      target: target(),
      viaRelay: (port) => postgresConfig.parse({ host: "127.0.0.1", port }),
      serverPort: cluster.port,
      admin: { username, password },
      async createAccount(name, pw) {
        await createRole(su, name, pw);
        // From PostgreSQL 16, CREATEROLE alone changes only roles it holds ADMIN OPTION on.
        if ((version?.v ?? 0) >= 160000)
          await su.query(`GRANT ${quoteIdent(name)} TO ${quoteIdent(username)} WITH ADMIN OPTION`);
      },
      dropAccount: (name) => dropRole(su, name),
      async adminSessionIds() {
        const { rows } = await su.query<{ pid: number }>(
          "select pid from pg_stat_activity where usename = $1 order by pid",
          [username],
        );
        return rows.map((r) => String(r.pid));
      },
      async killSession(pid) {
        await su.query("select pg_terminate_backend($1::int, 5000)", [Number(pid)]);
      },
      setAdminPassword: (pw) => setPassword(username, pw),
      async teardown() {
        await su.query("select pg_terminate_backend(pid) from pg_stat_activity where usename = $1", [
          username,
        ]);
        await dropRole(su, username).catch(() => undefined);
        await su.end();
      },
    };
  },
});

describe("postgres adapter specifics", () => {
  const run = randomBytes(3).toString("hex");
  const lines: string[] = [];
  const ctx = (admin = true): AdapterContext => ({
    admin: admin ? { username: "postgres", password: cluster.superuser.password } : undefined,
    log: {
      debug: (o, m) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`),
      info: (o, m) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`),
      warn: (o, m) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`),
      error: (o, m) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`),
    },
    timeoutMs: 10_000,
  });
  let su: pg.Client;

  beforeAll(async () => {
    su = await superuserClient();
  });
  afterAll(async () => {
    await su?.end();
  });

  it("never sends a plaintext password: the statement log holds only SCRAM verifiers", async () => {
    const role = `lhp${run}_log`;
    const initial = testPassword();
    await createRole(su, role, initial);
    try {
      const adminNext = testPassword();
      const selfNext = testPassword();
      await postgresAdapter.rotate(target(), { account: role, current: initial, next: adminNext }, ctx());
      await postgresAdapter.rotate(
        target(),
        { account: role, current: adminNext, next: selfNext },
        ctx(false),
      );
      expect(
        (await postgresAdapter.verify(target(), { username: role, password: selfNext }, ctx())).valid,
      ).toBe(true);

      const log = await readFile(cluster.logFile, "utf8");
      // The log does record these statements (so the absence below means something)...
      const alters = log.split("\n").filter((l) => l.includes("ALTER ROLE") && l.includes(role));
      expect(alters.length).toBeGreaterThanOrEqual(2);
      expect(alters.every((l) => l.includes("'SCRAM-SHA-256$4096:"))).toBe(true);
      // ...but never the new passwords themselves.
      expect(log.includes(adminNext)).toBe(false);
      expect(log.includes(selfNext)).toBe(false);
    } finally {
      await dropRole(su, role);
    }
  });

  it("computes the same SCRAM-SHA-256 verifier as the server", async () => {
    const role = `lhp${run}_scram`;
    const password = testPassword();
    await createRole(su, role, password);
    try {
      const { rows } = await su.query<{ v: string }>(
        "select rolpassword as v from pg_authid where rolname = $1",
        [role],
      );
      const stored = rows[0]?.v ?? "";
      const match = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(stored);
      expect(match).not.toBeNull();
      const salt = Buffer.from(match?.[2] ?? "", "base64");
      const ours = await scramSha256Verifier(password, { salt, iterations: Number(match?.[1]) });
      expect(ours).toBe(stored);
      expect(await scramSha256Verifier(testPassword(), { salt, iterations: Number(match?.[1]) })).not.toBe(
        stored,
      );
    } finally {
      await dropRole(su, role);
    }
  });

  it("quoteIdent names exactly the given identifier", async () => {
    for (const name of ['a"b', 'x""; drop table t; --', "Ünï Çödé", "back\\slash", "it's"]) {
      const result = await su.query(`select 1 as ${quoteIdent(name)}`);
      expect(result.fields[0]?.name).toBe(name);
    }
    expect(quoteIdent('a"b')).toBe('"a""b"');
    expect(() => quoteIdent("a\0b")).toThrow();
  });

  it("quoteLiteral round-trips whatever standard_conforming_strings is", async () => {
    const values = ["it's", "back\\slash\\", "\\'; select 1; --", "E'x'", "ünï"];
    for (const scs of ["on", "off"]) {
      await su.query(`set standard_conforming_strings = ${scs}`);
      for (const value of values) {
        const { rows } = await su.query<{ v: string }>(`select ${quoteLiteral(value)}::text as v`);
        expect(rows[0]?.v).toBe(value);
      }
    }
    await su.query("reset standard_conforming_strings");
  });

  it("checkAccountName refuses empty, NUL and names PostgreSQL would truncate (over 63 bytes)", () => {
    expect(checkRoleName("")).not.toBeNull();
    expect(checkRoleName("a\0b")).not.toBeNull();
    expect(checkRoleName("a".repeat(63))).toBeNull();
    expect(checkRoleName("a".repeat(64))).not.toBeNull();
    expect(checkRoleName("é".repeat(31))).toBeNull();
    expect(checkRoleName("é".repeat(32))).not.toBeNull();
    expect(checkRoleName('any "chars" \\ \' ; -- ok')).toBeNull();
  });

  it("the config schema applies defaults and refuses unknown keys", () => {
    expect(postgresConfig.parse({ host: "db" })).toEqual({ host: "db", port: 5432, database: "postgres" });
    expect(postgresConfig.safeParse({ host: "db", user: "x" }).success).toBe(false);
    expect(
      postgresConfig.safeParse({ host: "db", ssl: { rejectUnauthorized: false, mode: "x" } }).success,
    ).toBe(false);
    expect(postgresConfig.safeParse({ host: "db", ssl: { ca: "PEM" } }).success).toBe(true);
    expect(postgresConfig.safeParse({ port: 5432 }).success).toBe(false);
  });

  it("refuses new passwords outside the constraints or printable ASCII, before connecting", async () => {
    const closed = postgresConfig.parse({ host: "127.0.0.1", port: await freePort() });
    for (const next of ["short", "x".repeat(100), `${testPassword()}é`, `${testPassword()}\n`]) {
      const err = await postgresAdapter
        .rotate(closed, { account: "any", next }, ctx())
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AdapterError);
      expect((err as AdapterError).code).toBe("invalid");
    }
  });

  it("a server that never answers gives a retryable timeout", async () => {
    await withSilentServer(async (port) => {
      const err = await postgresAdapter
        .verify(
          postgresConfig.parse({ host: "127.0.0.1", port }),
          { username: "x", password: "y" },
          {
            ...ctx(),
            timeoutMs: 300,
          },
        )
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AdapterError);
      expect((err as AdapterError).code).toBe("timeout");
      expect((err as AdapterError).retryable).toBe(true);
    });
  });

  it("terminateSessions needs an admin credential", async () => {
    const err = await postgresAdapter
      .terminateSessions?.(target(), "anyone", ctx(false))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe("privilege");
  });

  it("a missing database is a non-retryable invalid error", async () => {
    const t = postgresConfig.parse({ host: cluster.host, port: cluster.port, database: `nodb_${run}` });
    const err = await postgresAdapter
      .verify(t, { username: "postgres", password: cluster.superuser.password }, ctx())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe("invalid");
    expect((err as AdapterError).retryable).toBe(false);
  });
});
