import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { asSuperuser, type ScramPostgres } from "../support/pg-cluster.js";
import { waitFor } from "../support/wait-for.js";
import { type Checkout, listenerPort, type ProxyHarness } from "./harness.js";
import { leaseClient, pgResource, startPgProxy } from "./pg-setup.js";
import { pgError, pgStartup, rawConnect, readUntilClose } from "./wire.js";

/**
 * The listener answers as PostgreSQL itself does where a client can tell the difference: the
 * first packet, the backend's process id, cancel requests, which databases a lease may open.
 * Each case is sent to the real server and to the listener, and the answers compared.
 */

const RESOURCE = "pf-pg";
/** A resource whose listener opens one more database (proxy.databases). */
const MULTI = "pf-pg-multi";

let h: ProxyHarness;
let cluster: ScramPostgres;
let proxy: ProxyManager;
let port = 0;
let multiPort = 0;
let lease: Checkout;

function viaProxy(l: Checkout, database?: string, p = port): pg.Client {
  return leaseClient(l, p, { database });
}

beforeAll(async () => {
  const setup = await startPgProxy({ name: "proxy-pg-fidelity", admin: "pf_admin" });
  ({ h, cluster } = setup);
  await asSuperuser(cluster, async (c) => {
    await c.query("CREATE DATABASE pf_extra");
    for (let i = 1; i <= 4; i++) {
      await c.query(`CREATE ROLE pf_app_${i} LOGIN PASSWORD '${randomBytes(12).toString("hex")}'`);
    }
  });
  await h.register({
    ...pgResource(setup),
    name: RESOURCE,
    accounts: ["pf_app_1", "pf_app_2", "pf_app_3"],
    proxy: { port: 0 },
  });
  await h.register({
    ...pgResource(setup),
    name: MULTI,
    accounts: ["pf_app_4"],
    proxy: { port: 0, databases: ["pf_extra"] },
  });
  proxy = await h.manager({ auditStatements: "none" });
  multiPort = listenerPort(proxy, MULTI);
  port = listenerPort(proxy, RESOURCE);
  lease = await h.checkout(RESOURCE);
}, 120_000);

afterAll(async () => {
  await h?.close();
  await cluster?.stop();
});

function int32s(...values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  for (const [i, v] of values.entries()) b.writeInt32BE(v, 4 * i);
  return b;
}

/** First packets a client may send, each with whether the sender closes its side right after. */
const FIRST_PACKETS: ReadonlyArray<{ name: string; bytes: () => Buffer; end?: boolean }> = [
  { name: "Terminate before any startup", bytes: () => Buffer.from([0x58, 0, 0, 0, 4]), end: true },
  { name: "an HTTP request", bytes: () => Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n") },
  { name: "a length below 8", bytes: () => int32s(4, 3 << 16) },
  { name: "a length above 10000", bytes: () => int32s(20_000, 3 << 16) },
  { name: "a partial length word, then close", bytes: () => Buffer.from([0, 0]), end: true },
  { name: "a packet cut short, then close", bytes: () => int32s(64, 3 << 16), end: true },
  { name: "a CancelRequest of the wrong size", bytes: () => int32s(12, 80877102, 1) },
  { name: "protocol 9.0", bytes: () => int32s(8, 9 << 16) },
  { name: "no user", bytes: () => Buffer.concat([int32s(9, 3 << 16), Buffer.from([0])]) },
  {
    name: "parameters without a terminator",
    bytes: () => {
      const body = Buffer.from("user\0x\0database");
      return Buffer.concat([int32s(8 + body.length, 3 << 16), body]);
    },
  },
  {
    name: "a StartupMessage pipelined after an SSLRequest",
    bytes: () => Buffer.concat([int32s(8, 80877103), pgStartup({ user: "x" })]),
  },
];

/** Everything a server answers to `bytes` until it closes (SSL answers 'N'/'S' stripped). */
async function answerTo(p: number, bytes: Buffer, end: boolean): Promise<Buffer> {
  const s = await rawConnect(p);
  const done = readUntilClose(s);
  s.write(bytes);
  if (end) s.end();
  const out = await done;
  return out[0] === 0x4e || out[0] === 0x53 ? out.subarray(1) : out;
}

describe("the first packet, as PostgreSQL answers it", () => {
  for (const c of FIRST_PACKETS) {
    it(`${c.name}: the same answer as the server's`, async () => {
      const direct = await answerTo(cluster.port, c.bytes(), c.end === true);
      const listener = await answerTo(port, c.bytes(), c.end === true);
      expect(listener.length === 0, `listener: ${listener.toString("latin1")}`).toBe(direct.length === 0);
      expect(pgError(listener)?.C).toBe(pgError(direct)?.C);
      if (direct.length > 0) expect(pgError(listener)?.S).toBe("FATAL");
      if (direct.length > 0) expect(pgError(listener)?.M).toBe(pgError(direct)?.M);
    });
  }

  it("a pg client that ends before it has connected gets no error, as with the server", async () => {
    for (const target of [cluster.port, port]) {
      const c = new pg.Client({
        host: "127.0.0.1",
        port: target,
        user: lease.leaseId,
        password: lease.token,
      });
      const errors: unknown[] = [];
      c.on("error", (e) => errors.push(e));
      // pg sends Terminate before its startup message; an ErrorResponse would fail this
      // connect (the server's silence leaves it unsettled). end() resolves once the socket closed.
      void c.connect().catch((e: unknown) => errors.push(e));
      await c.end();
      expect(errors, `port ${target}`).toEqual([]);
    }
  });

  it("the dropped connections are audited with the server's reason", async () => {
    await waitFor("the audit record of a dropped startup", async () =>
      (await h.auditRecords()).some(
        (r) => r.scope === "proxy_session" && r.reason === "08P01 invalid length of startup packet",
      ),
    );
  });
});

describe("the backend's process id and cancel requests", () => {
  it("client.processID is pg_backend_pid(), and the pid NOTIFY names", async () => {
    const c = viaProxy(lease);
    await c.connect();
    try {
      const { rows } = await c.query<{ pid: number }>("select pg_backend_pid() as pid");
      const pid = rows[0]?.pid;
      expect((c as unknown as { processID: number }).processID).toBe(pid);
      const note = new Promise<pg.Notification>((resolve) => c.once("notification", resolve));
      await c.query("LISTEN pf_channel");
      await c.query("NOTIFY pf_channel, 'hello'");
      expect((await note).processId).toBe(pid);
    } finally {
      await c.end();
    }
  });

  it("pg's cancel through the listener stops that session's pg_sleep(30) with 57014, and only it", async () => {
    const clients = [viaProxy(lease), viaProxy(lease)] as const;
    await Promise.all(clients.map((c) => c.connect()));
    try {
      const pids = clients.map((c) => (c as unknown as { processID: number }).processID);
      const queries = clients.map((c) => {
        const q = new pg.Query("select pg_sleep(30)");
        const failed = new Promise<unknown>((resolve) => q.on("error", resolve));
        c.query(q);
        return { q, failed };
      });
      const sleeping = () =>
        asSuperuser(cluster, async (s) => {
          const r = await s.query<{ pid: number }>(
            "select pid from pg_stat_activity where pid = any($1) and state = 'active' and query like '%pg_sleep(30)%'",
            [pids],
          );
          return r.rows.map((x) => x.pid).sort();
        });
      await waitFor("both pg_sleep(30) to run", async () => (await sleeping()).length === 2);
      const cancel = (i: 0 | 1) => {
        const canceller = new pg.Client({ host: "127.0.0.1", port });
        canceller.on("error", () => undefined);
        const q = queries[i]?.q as pg.Query;
        (canceller as unknown as { cancel(c: pg.Client, q: pg.Query): void }).cancel(clients[i], q);
      };
      cancel(0);
      expect(await queries[0]?.failed).toMatchObject({ code: "57014" });
      // The other session of the same lease still sleeps; its own key stops it.
      await waitFor("only the other session to sleep", async () => {
        const now = await sleeping();
        return now.length === 1 && now[0] === pids[1];
      });
      cancel(1);
      expect(await queries[1]?.failed).toMatchObject({ code: "57014" });
      expect((await clients[0].query<{ n: number }>("select 1 as n")).rows).toEqual([{ n: 1 }]);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });
});

describe("the databases a lease may open", () => {
  async function databaseVia(l: Checkout, database: string | undefined, p: number): Promise<string> {
    const c = viaProxy(l, database, p);
    await c.connect();
    try {
      return (await c.query<{ db: string }>("select current_database() as db")).rows[0]?.db ?? "";
    } finally {
      await c.end();
    }
  }

  async function sessionRecord(leaseId: string, database: string): Promise<Record<string, unknown>> {
    return waitFor(`the session record of ${database}`, async () =>
      (await h.auditRecords()).find(
        (r) => r.scope === "proxy_session" && r.lease_id === leaseId && r.database === database,
      ),
    );
  }

  it("the registration's database, also when the client names none (pg sends the user name)", async () => {
    const l = await h.checkout(RESOURCE);
    expect(await databaseVia(l, "postgres", port)).toBe("postgres");
    expect(await databaseVia(l, undefined, port)).toBe("postgres");
    expect(await sessionRecord(l.leaseId, "postgres")).toMatchObject({ decision: "allow" });
  });

  it("dbname=template1 is refused with the server's 42501 and audited with the database", async () => {
    const l = await h.checkout(RESOURCE);
    const c = viaProxy(l, "template1");
    const err = await c.connect().then(
      () => undefined,
      (e: unknown) => e as { code?: string; message?: string; detail?: string },
    );
    expect(err).toMatchObject({ code: "42501", message: 'permission denied for database "template1"' });
    expect(err?.detail).toContain("postgres");
    expect(await sessionRecord(l.leaseId, "template1")).toMatchObject({
      decision: "deny",
      reason: expect.stringContaining("42501"),
    });
    // The account itself could have opened it: the listener, not the server, refused.
    const can = await asSuperuser(cluster, async (s) => {
      const r = await s.query<{ ok: boolean }>(
        "select has_database_privilege($1, 'template1', 'CONNECT') as ok",
        [l.account],
      );
      return r.rows[0]?.ok;
    });
    expect(can).toBe(true);
  });

  it("proxy.databases opens the listed ones and still no other", async () => {
    const l = await h.checkout(MULTI);
    expect(await databaseVia(l, "pf_extra", multiPort)).toBe("pf_extra");
    expect(await databaseVia(l, "postgres", multiPort)).toBe("postgres");
    await expect(databaseVia(l, "template1", multiPort)).rejects.toMatchObject({ code: "42501" });
    expect(await sessionRecord(l.leaseId, "pf_extra")).toMatchObject({ decision: "allow" });
  });

  it("a registration with proxy.databases for another adapter is refused, naming the field", async () => {
    await expect(
      h.register({
        adapter: "redis-acl",
        name: "pf-redis",
        connection: { host: "127.0.0.1", port: 6379 },
        accounts: ["pf_none"],
        rotateWith: "self",
        proxy: { port: 0, databases: ["x"] },
      }),
    ).rejects.toThrow(/registration\.proxy\.databases/);
  });
});

describe("the listener's leg to the server", () => {
  it("a registration with a listener and no connection.ssl is told the leg is plaintext; with ssl it is not", async () => {
    const reg = {
      adapter: "postgres",
      name: "pf-pg-plain",
      connection: { host: cluster.host, port: cluster.port, database: "postgres" },
      accounts: [{ name: "pf_nobody", password: "not-a-real-password" }],
      rotateWith: "self",
      proxy: { port: 0 },
    };
    const opts = { dryRun: true, actor: "test", requestId: "req_dry" };
    const plain = await h.node.resourceService.register(reg, opts);
    expect(plain.warnings).toEqual([
      expect.stringMatching(/^registration\.connection\.ssl: not set, .*plaintext/),
    ]);
    const noProxy = await h.node.resourceService.register({ ...reg, proxy: undefined }, opts);
    expect(noProxy.warnings).toEqual([]);
    const sealed = await h.node.resourceService.register(
      { ...reg, connection: { ...reg.connection, ssl: { rejectUnauthorized: false } } },
      opts,
    );
    expect(sealed.warnings).toEqual([]);
  });
});
