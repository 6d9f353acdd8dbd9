/**
 * Rotation latency per adapter (median of 20 rotate() calls in admin mode) against the bare
 * change on an already-open admin connection, same target, same run. rotate() reuses the
 * adapters' pooled admin connection (adapters/admin-sessions.ts), opened by the untimed
 * first call; a call after the pool's idle time or maximum age connects and authenticates
 * again, as every call did before the pool.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { Client as LdapClient } from "ldapts";
import { createConnection } from "mysql2/promise";
import pg from "pg";
import type { Adapter, AdapterContext } from "../adapters/adapter.js";
import { closeAdminSessions } from "../adapters/admin-sessions.js";
import { createExecAdapter } from "../adapters/exec/index.js";
import { builtinAdapters } from "../adapters/registry.js";
import { createLogger } from "../sidecar/logger.js";
import { createMariadbAccount, dropMariadbAccount, mariadbRoot } from "../test/support/mariadb.js";
import { startScramPostgres } from "../test/support/pg-cluster.js";
import { startRedisServer } from "../test/support/redis-server.js";
import { startSlapd } from "../test/support/slapd.js";
import { printTable, quick, type Row, writeResults } from "./stats.js";

const N = quick ? 8 : 20;
const log = createLogger("silent");
const pw = () => `Bench-${randomBytes(12).toString("base64url")}`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function timeN(fn: () => Promise<unknown>): Promise<number> {
  const out: number[] = [];
  await fn();
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return median(out);
}

async function rotations(
  adapter: Adapter<unknown>,
  target: unknown,
  account: string,
  first: string,
  ctx: AdapterContext,
) {
  let current = first;
  return timeN(async () => {
    const next = pw();
    await adapter.rotate(target, { account, current, next }, ctx);
    current = next;
  });
}

const get = (id: string) => {
  const a = builtinAdapters.get(id);
  if (!a) throw new Error(`no adapter ${id}`);
  return a;
};

async function main(): Promise<void> {
  const rows: Row[] = [];
  const rotateRow = (adapter: string, product: number, floor: number): Row => ({
    figure: `${adapter} rotate (median of N)`,
    product,
    floor,
    unit: "ms",
    better: "lower",
    goal: "≤ 1.2×",
  });
  // PostgreSQL (private scram cluster)
  const pgc = await startScramPostgres();
  try {
    const su = new pg.Client({
      host: "127.0.0.1",
      port: pgc.port,
      user: "postgres",
      password: pgc.superuser.password,
      database: "postgres",
    });
    await su.connect();
    const adminPw = pw();
    await su.query(`CREATE ROLE bench_admin LOGIN CREATEROLE PASSWORD '${adminPw}'`);
    const first = pw();
    await su.query(`CREATE ROLE bench_acct LOGIN PASSWORD '${first}'`);
    const adapter = get("postgres");
    const target = adapter.config.parse({ host: "127.0.0.1", port: pgc.port });
    const product = await rotations(adapter, target, "bench_acct", first, {
      admin: { username: "bench_admin", password: adminPw },
      log,
      timeoutMs: 10_000,
    });
    const floor = await timeN(() => su.query(`ALTER ROLE bench_acct PASSWORD '${pw()}'`));
    rows.push(rotateRow("postgres", product, floor));
    await su.end();
  } finally {
    await closeAdminSessions();
    await pgc.stop();
  }
  // MariaDB (local server)
  const tag = randomBytes(3).toString("hex");
  const user = `lh_bench_${tag}`;
  const admin = `lh_bench_admin_${tag}`;
  const root = await mariadbRoot();
  try {
    const first = pw();
    const adminPw = pw();
    await createMariadbAccount(root, user, first);
    await createMariadbAccount(root, admin, adminPw);
    await root.query(`GRANT CREATE USER ON *.* TO '${admin}'@'%'`);
    const adapter = get("mysql");
    const target = adapter.config.parse({ host: "127.0.0.1", port: 3306 });
    const product = await rotations(adapter, target, user, first, {
      admin: { username: admin, password: adminPw },
      log,
      timeoutMs: 10_000,
    });
    const conn = await createConnection({ host: "127.0.0.1", port: 3306, user: admin, password: adminPw });
    const floor = await timeN(() => conn.query(`ALTER USER '${user}'@'%' IDENTIFIED BY '${pw()}'`));
    await conn.end();
    rows.push(rotateRow("mysql", product, floor));
  } finally {
    await closeAdminSessions();
    await dropMariadbAccount(root, user).catch(() => undefined);
    await dropMariadbAccount(root, admin).catch(() => undefined);
    await root.end();
  }
  // OpenLDAP (private slapd)
  const slapd = await startSlapd();
  try {
    const first = pw();
    await slapd.addUser("bench", first);
    const adapter = get("ldap");
    const target = adapter.config.parse({ url: slapd.url, accountDn: slapd.accountDnTemplate });
    const product = await rotations(adapter, target, "bench", first, {
      admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
      log,
      timeoutMs: 10_000,
    });
    const client = new LdapClient({ url: slapd.url });
    await client.bind(slapd.rotator.dn, slapd.rotator.password);
    const { Change, Attribute } = await import("ldapts");
    const floor = await timeN(() =>
      client.modify(slapd.userDn("bench"), [
        new Change({
          operation: "replace",
          modification: new Attribute({ type: "userPassword", values: [pw()] }),
        }),
      ]),
    );
    await client.unbind();
    rows.push(rotateRow("ldap", product, floor));
  } finally {
    await closeAdminSessions();
    await slapd.stop();
  }
  // Redis ACL (private redis-server)
  const rs = await startRedisServer();
  try {
    const first = pw();
    await rs.addUser("bench", first);
    const adapter = get("redis-acl");
    const target = adapter.config.parse({ host: "127.0.0.1", port: rs.port });
    const product = await rotations(adapter, target, "bench", first, {
      admin: rs.admin,
      log,
      timeoutMs: 10_000,
    });
    const conn = new Redis({ port: rs.port, username: rs.admin.username, password: rs.admin.password });
    // The floor looks the user up first too: ACL SETUSER creates a missing user, Redis has no
    // conditional form, and ACL commands run neither in scripts nor in a transaction that could
    // test first, so the adapter's guarantee of never creating a user (test/adapters/redis-acl.test.ts,
    // "rotating a missing user fails and leaves no user behind") costs this ACL GETUSER round trip.
    const floor = await timeN(async () => {
      if ((await conn.call("ACL", "GETUSER", "bench")) === null) throw new Error("no user bench");
      await conn.call("ACL", "SETUSER", "bench", "resetpass", `>${pw()}`);
    });
    conn.disconnect();
    rows.push(rotateRow("redis-acl", product, floor));
  } finally {
    await closeAdminSessions();
    await rs.stop();
  }
  // exec (the sample script; its floor is one run of the same script)
  const dir = await mkdtemp(join(tmpdir(), "lh-bench-exec-"));
  try {
    const script = fileURLToPath(
      new URL("../test/fixtures/exec-adapter/store-passwords.mjs", import.meta.url),
    );
    const store = join(dir, "store.json");
    const adminCred = { username: "dba", password: pw() };
    const first = pw();
    await writeFile(store, JSON.stringify({ admin: adminCred, accounts: { bench: first }, sessions: {} }), {
      mode: 0o600,
    });
    const adapter = createExecAdapter({
      commands: { bench: { command: [process.execPath, script, store], timeoutSeconds: 20 } },
    }) as Adapter<unknown>;
    const target = { command: "bench" };
    const product = await rotations(adapter, target, "bench", first, {
      admin: adminCred,
      log,
      timeoutMs: 20_000,
    });
    rows.push({
      figure: "exec rotate (node script; floor n/a)",
      product,
      floor: product,
      unit: "ms",
      better: "lower",
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  printTable(
    `rotation latency per adapter (median of ${N}; floor = bare change on an open admin connection)`,
    rows,
  );
  process.stdout.write(`results: ${writeResults("rotation", { quick, n: N, rows })}\n`);
}

void main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
