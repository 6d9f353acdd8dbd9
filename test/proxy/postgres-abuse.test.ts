import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { asSuperuser, type ScramPostgres } from "../support/pg-cluster.js";
import { waitFor } from "../support/wait-for.js";
import { type Checkout, listenerPort, type ProxyHarness } from "./harness.js";
import { leaseClient, pgResource, startPgProxy } from "./pg-setup.js";
import { run, toolEnv } from "./processes.js";
import { pgStartup, rawConnect, readUntilClose } from "./wire.js";

/**
 * The PostgreSQL listener under abuse: a sealed password (reveal: false) cannot be changed
 * through it, and idle or surplus connections cannot keep a real client out.
 */

const RESOURCE = "px-abuse";
const ACCOUNTS = ["px_ab_1", "px_ab_2", "px_ab_3"];

let h: ProxyHarness;
let cluster: ScramPostgres;
let proxy: ProxyManager;
let port = 0;
let lease: Checkout;

/** The account's stored password verifier: unchanged as long as nobody set a new password. */
async function verifierOf(account: string): Promise<string> {
  return asSuperuser(cluster, async (c) => {
    const r = await c.query<{ v: string }>("select rolpassword as v from pg_authid where rolname = $1", [
      account,
    ]);
    return r.rows[0]?.v ?? "";
  });
}

function viaProxy(l: Checkout, p = port): pg.Client {
  return leaseClient(l, p);
}

async function refusals(leaseId: string): Promise<Array<Record<string, unknown>>> {
  return (await h.auditRecords()).filter(
    (r) => r.lease_id === leaseId && r.event === "decision" && r.scope === "proxy_statement",
  );
}

/** Opens `n` TCP connections that never speak, `batch` at a time so the test stays local and bounded. */
async function idleConnections(p: number, n: number, batch = 100): Promise<Socket[]> {
  const out: Socket[] = [];
  for (let i = 0; i < n; i += batch) {
    const made = await Promise.all(
      Array.from({ length: Math.min(batch, n - i) }, () =>
        rawConnect(p).then((s) => {
          s.on("error", () => undefined);
          // Read (and drop) whatever the proxy says, so its closing the connection is seen here.
          s.resume();
          return s;
        }),
      ),
    );
    out.push(...made);
  }
  return out;
}

beforeAll(async () => {
  const setup = await startPgProxy({ name: "proxy-abuse", admin: "px_ab_admin" });
  ({ h, cluster } = setup);
  await asSuperuser(cluster, async (c) => {
    for (const a of ACCOUNTS)
      await c.query(`CREATE ROLE ${a} LOGIN PASSWORD '${randomBytes(12).toString("hex")}'`);
    await c.query("CREATE TABLE px_ab_marks (note text)");
    await c.query("GRANT ALL ON px_ab_marks TO PUBLIC");
  });
  await h.register({ ...pgResource(setup), name: RESOURCE, accounts: ACCOUNTS, proxy: { port: 0 } });
  proxy = await h.manager({ auditStatements: "text" });
  port = listenerPort(proxy, RESOURCE);
  lease = await h.checkout(RESOURCE);
}, 120_000);

afterAll(async () => {
  await h?.close();
  await cluster?.stop();
});

describe("reveal: false — a password change is refused and the session goes on", () => {
  const attempted = `Agent-${randomBytes(9).toString("hex")}`;

  it("ALTER ROLE CURRENT_USER PASSWORD (simple Query) gets 42501, is audited, and the next statement runs", async () => {
    const before = await verifierOf(lease.account);
    const c = viaProxy(lease);
    await c.connect();
    try {
      await expect(c.query(`ALTER ROLE CURRENT_USER PASSWORD '${attempted}'`)).rejects.toMatchObject({
        code: "42501",
      });
      const next = await c.query<{ who: string; s: string }>(
        "select current_user as who, 'alter role x password' as s",
      );
      expect(next.rows).toEqual([{ who: lease.account, s: "alter role x password" }]);
    } finally {
      await c.end();
    }
    expect(await verifierOf(lease.account)).toBe(before);
    const direct = new pg.Client({
      host: cluster.host,
      port: cluster.port,
      user: lease.account,
      password: attempted,
      database: "postgres",
    });
    await expect(direct.connect()).rejects.toMatchObject({ code: "28P01" });
    let recs: Array<Record<string, unknown>> = [];
    await waitFor("the refusal in the audit file", async () => {
      recs = await refusals(lease.leaseId);
      return recs.length >= 1;
    });
    expect(recs[0]).toMatchObject({
      event: "decision",
      scope: "proxy_statement",
      decision: "deny",
      tool: "postgres",
      resource: RESOURCE,
      account: lease.account,
      agent: "spiffe://example.org/agent/a",
    });
    expect(String(recs[0]?.reason)).toMatch(/^42501 /);
    expect(recs[0]?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it("the extended protocol (Parse), multi-statement messages, comments and quoting are refused alike", async () => {
    const before = await verifierOf(lease.account);
    const c = viaProxy(lease);
    await c.connect();
    try {
      await expect(
        c.query({ name: "pw", text: `ALTER USER "${lease.account}" ENCRYPTED PASSWORD '${attempted}'` }),
      ).rejects.toMatchObject({ code: "42501" });
      await expect(c.query({ text: "select $1::int as n", values: [7] })).resolves.toMatchObject({
        rows: [{ n: 7 }],
      });
      // The whole message is refused: the INSERT before the password change never runs.
      await expect(
        c.query(
          `INSERT INTO px_ab_marks VALUES ('before'); ALTER/**/ROLE -- x\n CURRENT_USER PASSWORD '${attempted}'`,
        ),
      ).rejects.toMatchObject({ code: "42501" });
      await expect(c.query(`CREATE ROLE px_ab_new LOGIN PASSWORD '${attempted}'`)).rejects.toMatchObject({
        code: "42501",
      });
      await expect(
        c.query(
          `DO $$BEGIN EXECUTE 'ALTER ROLE ' || current_user || ' PASSWORD ' || quote_literal('${attempted}'); END$$`,
        ),
      ).rejects.toMatchObject({ code: "42501" });
      // Harmless neighbours still pass.
      await expect(c.query("SET password_encryption = 'scram-sha-256'")).resolves.toBeDefined();
      // Inside a transaction the refusal aborts it, as any error would.
      await c.query("BEGIN");
      await expect(c.query(`alter user current_user password '${attempted}'`)).rejects.toMatchObject({
        code: "42501",
      });
      await expect(c.query("select 1")).rejects.toMatchObject({ code: "25P02" });
      await c.query("ROLLBACK");
      const marks = await c.query("select count(*)::int as n from px_ab_marks");
      expect(marks.rows).toEqual([{ n: 0 }]);
    } finally {
      await c.end();
    }
    expect(await verifierOf(lease.account)).toBe(before);
    await waitFor(
      "five more refusals in the audit file",
      async () => (await refusals(lease.leaseId)).length >= 6,
    );
  });

  it("psql's \\password is refused and psql carries on", async () => {
    const before = await verifierOf(lease.account);
    const r = await run(
      "/usr/bin/psql",
      [
        `host=127.0.0.1 port=${port} user=${lease.leaseId} dbname=postgres sslmode=require`,
        "-X",
        "-At",
        "-c",
        `\\password ${lease.account}`,
        "-c",
        "select 'still here'",
      ],
      toolEnv({ PGPASSWORD: lease.token, PGCONNECT_TIMEOUT: "10" }),
      `${attempted}\n${attempted}\n`,
    );
    expect(r.stderr).toContain("leasehold: changing a role's password is not allowed");
    expect(r.stdout.trim()).toBe("still here");
    expect(await verifierOf(lease.account)).toBe(before);
  });

  it("where the password is revealed, a change is let through but its text is never audited", async () => {
    const openPassword = randomBytes(12).toString("hex");
    h.secrets.push(openPassword);
    await asSuperuser(cluster, (c) => c.query(`CREATE ROLE px_ab_open LOGIN PASSWORD '${openPassword}'`));
    const adminPassword = randomBytes(18).toString("base64url");
    h.secrets.push(adminPassword);
    await asSuperuser(cluster, (c) =>
      c.query(`CREATE ROLE px_ab_admin2 LOGIN CREATEROLE PASSWORD '${adminPassword}'`),
    );
    await h.register({
      ...pgResource({ cluster, admin: { username: "px_ab_admin2", password: adminPassword } }),
      name: "px-open",
      accounts: ["px_ab_open"],
      reveal: true,
      proxy: { port: 0 },
    });
    const m = await h.manager({ auditStatements: "text" });
    const ep = m.endpointFor("px-open");
    if (!ep) throw new Error("no listener");
    const l = await h.checkout("px-open");
    const own = `Own-${randomBytes(9).toString("hex")}`;
    const c = viaProxy(l, ep.port);
    await c.connect();
    try {
      await c.query(`ALTER ROLE CURRENT_USER PASSWORD '${own}'`);
      await c.query("select 'marker' as m");
    } finally {
      await c.end();
    }
    let statements: Array<Record<string, unknown>> = [];
    await waitFor("both statements in the audit file", async () => {
      statements = (await h.auditRecords()).filter(
        (r) => r.lease_id === l.leaseId && r.scope === "proxy_statement",
      );
      return statements.length >= 2;
    });
    expect(statements.map((r) => r.statement)).toEqual([undefined, "select 'marker' as m"]);
    expect(statements[0]?.digest).toMatch(/^sha256:/);
    expect(JSON.stringify(await h.auditRecords())).not.toContain(own);
  });

  it("no statement text of a refused change, nor the attempted password, reaches the audit trail or logs", async () => {
    const audit = JSON.stringify(await h.auditRecords());
    expect(audit).not.toContain(attempted);
    expect(h.logLines.join("")).not.toContain(attempted);
    for (const s of h.secrets) expect(audit.includes(s)).toBe(false);
  });
});

describe("listeners stay reachable under abuse", () => {
  it("1,010 idle connections do not keep a real client out, nor push out a logged-in session", async () => {
    // A deadline far away: only the handshake cap, not the deadline, can make room here.
    const patient = await h.manager({ handshakeTimeoutMs: 60_000 });
    const p = patient.endpointFor(RESOURCE)?.port;
    if (!p) throw new Error("no listener");
    const l = lease;
    const steady = viaProxy(l, p);
    await steady.connect();
    const idle = await idleConnections(p, 1010);
    try {
      // At most the handshake cap is still open; every other idle connection was closed.
      await waitFor("idle connections beyond the handshake cap to be closed", () => {
        return idle.filter((s) => !s.closed).length <= 64;
      });
      const fresh = viaProxy(l, p);
      await fresh.connect();
      try {
        expect((await fresh.query<{ who: string }>("select current_user as who")).rows).toEqual([
          { who: l.account },
        ]);
      } finally {
        await fresh.end();
      }
      expect((await steady.query<{ n: number }>("select 1 as n")).rows).toEqual([{ n: 1 }]);
    } finally {
      for (const s of idle) s.destroy();
      await steady.end();
    }
  });

  it("an idle connection holds its handshake slot no longer than the deadline", async () => {
    const strict = await h.manager({ maxHandshakes: 1, handshakeTimeoutMs: 300 });
    const ep = strict.endpointFor(RESOURCE);
    if (!ep) throw new Error("no listener");
    const s = await rawConnect(ep.port);
    // Closed at the deadline without a word, as the server does (StartupPacketTimeoutHandler).
    expect((await readUntilClose(s)).length).toBe(0);
  });

  it("when the handshake slots are full the oldest idle connection is closed for a new one", async () => {
    const small = await h.manager({ maxHandshakes: 2 });
    const ep = small.endpointFor(RESOURCE);
    if (!ep) throw new Error("no listener");
    const first = await rawConnect(ep.port);
    const firstClosed = readUntilClose(first);
    const second = await rawConnect(ep.port);
    second.on("error", () => undefined);
    // The second one has started its login: the proxy waits on it, it stays evictable too.
    second.write(pgStartup({ user: "lse_nobody", database: "postgres" }));
    const c = viaProxy(lease, ep.port);
    await c.connect();
    try {
      await firstClosed;
      expect((await c.query<{ n: number }>("select 2 as n")).rows).toEqual([{ n: 2 }]);
    } finally {
      await c.end();
      second.destroy();
    }
  });

  it("the 17th logged-in connection of one lease is refused with 53300 naming the cap", async () => {
    const l = lease;
    await waitFor("earlier sessions to close", () => proxy.connections(l.leaseId) === 0);
    const clients = Array.from({ length: 16 }, () => viaProxy(l));
    try {
      await Promise.all(clients.map((c) => c.connect()));
      const extra = viaProxy(l);
      await expect(extra.connect()).rejects.toMatchObject({
        code: "53300",
        message: expect.stringContaining("proxy.maxConnectionsPerLease"),
      });
      // Another lease is not affected by this one's cap.
      const other = await h.checkout(RESOURCE, { agent: "b" });
      const o = viaProxy(other);
      await o.connect();
      await o.end();
      // A freed place can be taken again.
      await clients.pop()?.end();
      await waitFor("the freed place", () => proxy.connections(l.leaseId) === 15);
      const again = viaProxy(l);
      await again.connect();
      clients.push(again);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });
});
