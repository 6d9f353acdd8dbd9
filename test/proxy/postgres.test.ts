import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { asSuperuser, type ScramPostgres } from "../support/pg-cluster.js";
import { waitFor } from "../support/wait-for.js";
import { type Checkout, listenerPort, type ProxyHarness } from "./harness.js";
import { leaseClient, pgResource, startPgProxy } from "./pg-setup.js";
import { run, start, toolEnv } from "./processes.js";
import { pgError, pgMessages, pgStartup, rawConnect, readUntil, readUntilClose } from "./wire.js";

const PSQL = "/usr/bin/psql";
const RESOURCE = "px-pg";
const OTHER = "px-pg-other";

let h: ProxyHarness;
let cluster: ScramPostgres;
let proxy: ProxyManager;
let port = 0;
let lease: Checkout;

/** A pg client through the proxy, logged in with a lease. */
function viaProxy(l: Checkout, p = port, password = l.token): pg.Client {
  return leaseClient(l, p, { password });
}

function psqlArgs(l: Checkout, extra: readonly string[], sslmode = "require"): string[] {
  return [
    `host=127.0.0.1 port=${port} user=${l.leaseId} dbname=postgres sslmode=${sslmode}`,
    "-X",
    "-v",
    "ON_ERROR_STOP=1",
    ...extra,
  ];
}

function psqlEnv(l: Checkout): NodeJS.ProcessEnv {
  return toolEnv({ PGPASSWORD: l.token, PGCONNECT_TIMEOUT: "10" });
}

/** The first error a client emits; later ones (the socket closing after a FATAL) are swallowed. */
function firstError(c: pg.Client): Promise<Error & { code?: string }> {
  return new Promise((resolve) => c.on("error", resolve));
}

async function sessionsOf(account: string): Promise<number> {
  return asSuperuser(cluster, async (c) => {
    const r = await c.query<{ n: string }>("select count(*) as n from pg_stat_activity where usename = $1", [
      account,
    ]);
    return Number(r.rows[0]?.n ?? 0);
  });
}

beforeAll(async () => {
  const setup = await startPgProxy({ name: "proxy-pg", admin: "px_admin" });
  ({ h, cluster } = setup);
  await asSuperuser(cluster, async (c) => {
    for (let i = 1; i <= 6; i++) {
      await c.query(`CREATE ROLE px_app_${i} LOGIN PASSWORD '${randomBytes(12).toString("hex")}'`);
    }
    await c.query("CREATE TABLE px_tx (id int primary key, note text)");
    await c.query("CREATE TABLE px_copy (id int, name text)");
    await c.query("GRANT ALL ON px_tx, px_copy TO PUBLIC");
  });
  // pgResource: the proxy itself must close sessions when a lease ends (the adapter's termination is off).
  await h.register({
    ...pgResource(setup),
    name: RESOURCE,
    accounts: ["px_app_1", "px_app_2", "px_app_3", "px_app_4", "px_app_5"],
    proxy: { port: 0 },
  });
  await h.register({ ...pgResource(setup), name: OTHER, accounts: ["px_app_6"] });
  proxy = await h.manager({ auditStatements: "text" });
  port = listenerPort(proxy, RESOURCE);
  lease = await h.checkout(RESOURCE);
}, 120_000);

afterAll(async () => {
  await h?.close();
  await cluster?.stop();
});

describe("PostgreSQL listener with real clients", () => {
  it("starts only for registrations with proxy, on 127.0.0.1", () => {
    expect(proxy.endpointFor(RESOURCE)).toEqual({ host: "127.0.0.1", port, protocol: "postgres" });
    expect(proxy.endpointFor(OTHER)).toBeUndefined();
  });

  it("psql logs in over TLS with the lease token and runs as the leased account", async () => {
    const r = await run(
      PSQL,
      psqlArgs(lease, ["-At", "-c", "select current_user", "-c", "\\conninfo"]),
      psqlEnv(lease),
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const [user, ...info] = r.stdout.trim().split("\n");
    expect(user).toBe(lease.account);
    expect(info.join("\n")).toContain("SSL connection");
  });

  it("psql without TLS works too (sslmode=disable)", async () => {
    const r = await run(PSQL, psqlArgs(lease, ["-At", "-c", "select 40 + 2"], "disable"), psqlEnv(lease));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("42");
  });

  it("pg runs simple and extended queries and transactions", async () => {
    const c = viaProxy(lease);
    await c.connect();
    try {
      const r = await c.query<{ n: number; who: string }>(
        "select $1::int + 1 as n, current_user as who",
        [41],
      );
      expect(r.rows[0]).toEqual({ n: 42, who: lease.account });
      await c.query("BEGIN");
      await c.query("INSERT INTO px_tx VALUES (1, 'rolled back')");
      await c.query("ROLLBACK");
      await c.query("BEGIN");
      await c.query("INSERT INTO px_tx VALUES (2, 'kept')");
      await c.query("COMMIT");
      const rows = await c.query<{ id: number }>("SELECT id FROM px_tx ORDER BY id");
      expect(rows.rows.map((x) => x.id)).toEqual([2]);
      await expect(c.query("SELECT * FROM no_such_table")).rejects.toMatchObject({ code: "42P01" });
      expect((await c.query("select 1 as ok")).rows).toEqual([{ ok: 1 }]);
    } finally {
      await c.end();
    }
  });

  it("COPY in and out through psql", async () => {
    const script = "COPY px_copy FROM STDIN;\n1\talpha\n2\tbeta\n\\.\nCOPY px_copy TO STDOUT;\n";
    const r = await run(PSQL, psqlArgs(lease, ["-At", "-f", "-"]), psqlEnv(lease), script);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("COPY 2");
    expect(r.stdout).toContain("1\talpha\n2\tbeta");
  });

  it("a cancel request reaches the real backend (psql, Ctrl-C on pg_sleep)", async () => {
    const p = start(PSQL, psqlArgs(lease, ["-c", "select pg_sleep(60)"]), psqlEnv(lease));
    p.child.stdin.end();
    await waitFor("pg_sleep to run", () =>
      asSuperuser(cluster, async (c) => {
        const r = await c.query(
          "select 1 from pg_stat_activity where usename = $1 and state = 'active' and query like '%pg_sleep(60)%'",
          [lease.account],
        );
        return r.rowCount === 1;
      }),
    );
    p.child.kill("SIGINT");
    const r = await p.result;
    expect(r.stderr).toContain("canceling statement due to user request");
    expect(r.code).not.toBe(0);
  });

  it("the client sees the backend's process id (and its own secret)", async () => {
    const c = viaProxy(lease);
    await c.connect();
    try {
      const r = await c.query<{ pid: number }>("select pg_backend_pid() as pid");
      expect((c as unknown as { processID: number }).processID).toBe(r.rows[0]?.pid);
    } finally {
      await c.end();
    }
  });

  it("16 parallel connections (a lease's cap) each get their own backend", async () => {
    // Sessions of the earlier tests may still be closing on the proxy's side.
    await waitFor("earlier sessions to close", () => proxy.connections(lease.leaseId) === 0);
    const clients = Array.from({ length: 16 }, () => viaProxy(lease));
    try {
      await Promise.all(clients.map((c) => c.connect()));
      const rows = await Promise.all(
        clients.map(
          async (c, i) =>
            (
              await c.query<{ pid: number; who: string; i: number }>(
                "select pg_backend_pid() as pid, current_user as who, $1::int as i",
                [i],
              )
            ).rows[0],
        ),
      );
      expect(new Set(rows.map((r) => r?.pid)).size).toBe(16);
      expect(rows.every((r) => r?.who === lease.account)).toBe(true);
      expect(rows.map((r) => r?.i)).toEqual(Array.from({ length: 16 }, (_, i) => i));
      expect(proxy.connections(lease.leaseId)).toBe(16);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });
});

describe("PostgreSQL listener refusals", () => {
  it("a wrong token is refused with 28P01", async () => {
    const c = viaProxy(lease, port, `${lease.token.slice(0, -4)}AAAA`);
    await expect(c.connect()).rejects.toMatchObject({ code: "28P01" });
  });

  it("a token of another resource's lease is refused with 28P01", async () => {
    const other = await h.checkout(OTHER);
    const c = viaProxy(other);
    await expect(c.connect()).rejects.toMatchObject({ code: "28P01" });
  });

  it("a token presented for another lease id is refused with 28P01", async () => {
    const c = new pg.Client({
      host: "127.0.0.1",
      port,
      user: "lse_not_this_one",
      password: lease.token,
      database: "postgres",
    });
    await expect(c.connect()).rejects.toMatchObject({ code: "28P01" });
  });

  it("garbage before the startup message is dropped without a word, as the server does", async () => {
    const s = await rawConnect(port);
    const done = readUntilClose(s);
    s.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    expect((await done).length).toBe(0);
  });

  it("an oversized SASL response gets 08P01", async () => {
    const s = await rawConnect(port);
    s.on("error", () => undefined);
    s.write(pgStartup({ user: lease.leaseId, database: "postgres" }));
    const ask = await readUntil(s, (b) => b.length >= 9);
    expect(pgMessages(ask)[0]?.type).toBe("R");
    expect(ask.readInt32BE(5)).toBe(10);
    const done = readUntilClose(s);
    const head = Buffer.alloc(5);
    head[0] = 0x70;
    head.writeInt32BE(2 * 1024 * 1024, 1);
    s.write(Buffer.concat([head, Buffer.alloc(1024, 0x41)]));
    expect(pgError(await done)?.C).toBe("08P01");
  });

  it("a client that stalls during startup is closed without a word, as the server does", async () => {
    const impatient = await h.manager({ handshakeTimeoutMs: 300, auditStatements: "digest" });
    const ep = impatient.endpointFor(RESOURCE);
    if (!ep) throw new Error("no listener");
    const s = await rawConnect(ep.port);
    expect((await readUntilClose(s)).length).toBe(0);
    await waitFor("the refusal's audit record", async () =>
      (await h.auditRecords()).some(
        (r) => r.scope === "proxy_session" && r.reason === "08P01 the startup did not complete in time",
      ),
    );
  });
});

describe("the end of a lease ends its connections", () => {
  it("revocation closes open psql and pg sessions at once and refuses the token", async () => {
    const l = await h.checkout(RESOURCE);
    const c = viaProxy(l);
    const gotError = firstError(c);
    await c.connect();
    const p = start(PSQL, psqlArgs(l, ["-At"]), psqlEnv(l));
    p.child.stdin.write("select 'before';\n");
    await waitFor("psql to answer", () => p.stdout().includes("before"));
    expect(proxy.connections(l.leaseId)).toBe(2);
    await h.node.leaseService.revoke(l.leaseId, "test", "operator", { requestId: "req_revoke" });
    const err = await gotError;
    expect(err.code).toBe("57P01");
    expect(err.message).toContain("revoked");
    await waitFor("the backend sessions to end", async () => (await sessionsOf(l.account)) === 0);
    expect(proxy.connections(l.leaseId)).toBe(0);
    p.child.stdin.end("select 'after';\n");
    const r = await p.result;
    expect(r.stdout).not.toContain("after");
    expect(r.code).not.toBe(0);
    await expect(viaProxy(l).connect()).rejects.toMatchObject({ code: "28P01" });
  });

  it("a lease revoked by another sidecar of the cluster closes the session (event stream)", async () => {
    const other = await h.addNode();
    const l = await h.checkout(RESOURCE);
    const c = viaProxy(l);
    const gotError = firstError(c);
    await c.connect();
    expect((await c.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
    await other.leaseService.revoke(l.leaseId, "test", "operator", { requestId: "req_remote" });
    const err = await gotError;
    expect(err.code).toBe("57P01");
    await waitFor("the backend session to end", async () => (await sessionsOf(l.account)) === 0);
  });

  it("a statement still running when the lease ends is cancelled on the server", async () => {
    const l = await h.checkout(RESOURCE);
    const p = start(PSQL, psqlArgs(l, ["-At", "-c", "select pg_sleep(3600)"]), psqlEnv(l));
    p.child.stdin.end();
    await waitFor("the sleeping session", async () => (await sessionsOf(l.account)) === 1);
    await h.node.leaseService.revoke(l.leaseId, "test", "operator", { requestId: "req_revoke_busy" });
    const r = await p.result;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("terminating connection because the lease was revoked");
    // The adapter's termination is off here: only the proxy's cancel can end the hour-long sleep
    // before this wait's deadline.
    await waitFor("the server to end the statement", async () => (await sessionsOf(l.account)) === 0);
  });

  it("expiry closes the session", async () => {
    const l = await h.checkout(RESOURCE, { ttl: 1 });
    const c = viaProxy(l);
    const gotError = firstError(c);
    await c.connect();
    const err = await gotError;
    expect(err.code).toBe("57P01");
    expect(err.message).toContain("expired");
  });

  it("check-in closes the session", async () => {
    const l = await h.checkout(RESOURCE);
    const c = viaProxy(l);
    const closed = new Promise<void>((resolve) => c.once("end", () => resolve()));
    c.on("error", () => undefined);
    await c.connect();
    await h.node.leaseService.checkin(l.token, l.leaseId, { requestId: "req_checkin" });
    await closed;
    expect(proxy.connections(l.leaseId)).toBe(0);
  });
});

describe("audit of proxied connections", () => {
  it("records each session with lease, agent, account, client, bytes and duration, and each statement", async () => {
    const marker = `px_marker_${randomBytes(4).toString("hex")}`;
    const c = viaProxy(lease);
    await c.connect();
    await c.query(`select '${marker}' as m`);
    await c.end();
    let records: Array<Record<string, unknown>> = [];
    // Statement records are group-committed (deferred): wait for the statement's as well.
    await waitFor("the session and statement records", async () => {
      records = await h.auditRecords();
      return (
        records.some(
          (r) => r.scope === "proxy_session" && r.lease_id === lease.leaseId && Number(r.bytes_in) > 0,
        ) && records.some((r) => r.scope === "proxy_statement" && String(r.statement).includes(marker))
      );
    });
    const session = records.find(
      (r) => r.scope === "proxy_session" && r.lease_id === lease.leaseId && r.decision === "allow",
    );
    expect(session).toMatchObject({
      event: "tool_call",
      tool: "postgres",
      resource: RESOURCE,
      account: lease.account,
      agent: "spiffe://example.org/agent/a",
    });
    expect(String(session?.target)).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(Number(session?.bytes_out)).toBeGreaterThan(0);
    expect(Number(session?.duration_ms)).toBeGreaterThanOrEqual(0);
    const text = `select '${marker}' as m`;
    const stmt = records.find((r) => r.scope === "proxy_statement" && r.statement === text);
    expect(stmt).toMatchObject({
      event: "tool_call",
      lease_id: lease.leaseId,
      digest: `sha256:${createHash("sha256").update(text).digest("hex")}`,
    });
    const refused = records.find(
      (r) => r.scope === "proxy_session" && r.decision === "deny" && String(r.reason).startsWith("28P01"),
    );
    expect(refused).toBeDefined();
  });

  it("digest mode records the statement's SHA-256 without its text", async () => {
    const digestProxy = await h.manager({ auditStatements: "digest" });
    const ep = digestProxy.endpointFor(RESOURCE);
    if (!ep) throw new Error("no listener");
    const text = `select 'digest-only-${randomBytes(4).toString("hex")}'`;
    const c = viaProxy(lease, ep.port);
    await c.connect();
    await c.query(text);
    await c.end();
    const digest = `sha256:${createHash("sha256").update(text).digest("hex")}`;
    await waitFor("the statement record", async () =>
      (await h.auditRecords()).some((r) => r.digest === digest),
    );
    const rec = (await h.auditRecords()).find((r) => r.digest === digest);
    expect(rec?.statement).toBeUndefined();
    expect(JSON.stringify(await h.auditRecords())).not.toContain(text);
  });

  it("no token or password appears in the logs or the audit trail", async () => {
    expect(h.secrets.length).toBeGreaterThan(3);
    await h.expectNoSecretLeaked();
  });
});
