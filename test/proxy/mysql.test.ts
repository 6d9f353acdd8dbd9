import { createHash, randomBytes } from "node:crypto";
import {
  type Connection,
  type ConnectionOptions,
  createConnection,
  type RowDataPacket,
} from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RSA_BITS } from "../../sidecar/proxy/mysql/auth-plugins.js";
import { loginToMysql } from "../../sidecar/proxy/mysql/backend-login.js";
import { CAP, packet } from "../../sidecar/proxy/mysql/packets.js";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { dropMariadbAccounts, mariadbRoot } from "../support/mariadb.js";
import { waitFor } from "../support/wait-for.js";
import { type Checkout, listenerPort, type ProxyHarness, startProxyHarness } from "./harness.js";
import { mysqlRegistrationBase, prepareMariadb } from "./mysql-setup.js";
import { run, toolEnv } from "./processes.js";
import { rawConnect, readUntilClose } from "./wire.js";

const RESOURCE = "px-mysql";
const OTHER = "px-mysql-other";
const tag = randomBytes(3).toString("hex");
const ACCOUNTS = [1, 2, 3].map((i) => `pxm${tag}_${i}`);
const OTHER_ACCOUNT = `pxm${tag}_o`;
const ADMIN = `pxm${tag}_admin`;
const DB = `pxm${tag}_db`;

let h: ProxyHarness;
let proxy: ProxyManager;
let port = 0;
let lease: Checkout;

interface Row extends RowDataPacket {
  u: string;
}

/** A mysql2 connection through the listener as the lease (TLS unless `ssl: undefined`). */
async function viaProxy(
  l: Checkout,
  opts: Partial<ConnectionOptions> & { tls?: boolean } = {},
): Promise<Connection> {
  const { tls = true, ...rest } = opts;
  const c = await createConnection({
    host: "127.0.0.1",
    port,
    user: l.leaseId,
    password: l.token,
    ...(tls ? { ssl: { rejectUnauthorized: false } } : {}),
    ...rest,
  });
  c.on("error", () => undefined);
  return c;
}

/** Resolves when the listener closes the connection (mysql2 reports it as "end" or an error). */
function closedByListener(c: Connection): Promise<void> {
  return new Promise((resolve) => {
    c.once("end", () => resolve());
    c.once("error", () => resolve());
  });
}

async function currentUser(c: Connection): Promise<string> {
  const [rows] = await c.query<Row[]>("SELECT CURRENT_USER() AS u");
  return String(rows[0]?.u);
}

/** The error a login through the listener fails with. */
async function loginError(l: Checkout, opts: Partial<ConnectionOptions> & { tls?: boolean } = {}) {
  try {
    const c = await viaProxy(l, opts);
    await c.end();
  } catch (err) {
    return err as { errno?: number; message: string; sqlState?: string };
  }
  throw new Error("the login was accepted");
}

function cli(l: Checkout, args: readonly string[], input = "") {
  return run(
    "mariadb",
    ["--no-defaults", "-h", "127.0.0.1", "-P", String(port), "-u", l.leaseId, "-N", "-B", ...args],
    toolEnv({ MYSQL_PWD: l.token }),
    input,
  );
}

beforeAll(async () => {
  h = await startProxyHarness({ name: "proxy-mysql" });
  const root = await mariadbRoot();
  let adminPassword: string;
  try {
    adminPassword = await prepareMariadb(h, root, {
      accounts: [...ACCOUNTS, OTHER_ACCOUNT],
      granted: ACCOUNTS,
      admin: ADMIN,
      db: DB,
    });
  } finally {
    await root.end();
  }
  const base = { ...mysqlRegistrationBase(ADMIN, adminPassword), reveal: false };
  await h.register({ ...base, name: RESOURCE, accounts: ACCOUNTS, proxy: { port: 0 } });
  await h.register({ ...base, name: OTHER, accounts: [OTHER_ACCOUNT] });
  proxy = await h.manager({ auditStatements: "text" });
  port = listenerPort(proxy, RESOURCE);
  lease = await h.checkout(RESOURCE);
}, 180_000);

afterAll(async () => {
  await h?.close();
  await dropMariadbAccounts(...ACCOUNTS, OTHER_ACCOUNT, ADMIN).catch(() => undefined);
  const root = await mariadbRoot();
  await root.query(`DROP DATABASE IF EXISTS ${DB}`).catch(() => undefined);
  await root.end();
});

describe("MySQL listener with real clients", () => {
  it("mysql2 over TLS logs in as the lease and runs as the leased account", async () => {
    expect(proxy.endpointFor(RESOURCE)).toEqual({ host: "127.0.0.1", port, protocol: "mysql" });
    const c = await viaProxy(lease, { database: DB });
    try {
      expect(await currentUser(c)).toBe(`${lease.account}@%`);
      await c.query("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(2000))");
      await c.execute("INSERT INTO t VALUES (?, ?)", [1, "x".repeat(1500)]);
      const [rows] = await c.execute<RowDataPacket[]>("SELECT id, LENGTH(v) AS n FROM t WHERE id = ?", [1]);
      expect(rows).toEqual([{ id: 1, n: 1500 }]);
      const [ssl] = await c.query<RowDataPacket[]>("SHOW STATUS LIKE 'Ssl_cipher'");
      // TLS is between the client and the listener; the server leg is as registered (plain here).
      expect(ssl[0]?.Value).toBe("");
    } finally {
      await c.end();
    }
  });

  it("mysql2 without TLS sends the token RSA-encrypted with the listener's key", async () => {
    expect(lease.token.length).toBeLessThan(RSA_BITS / 8 - 42);
    const c = await viaProxy(lease, { tls: false });
    try {
      expect(await currentUser(c)).toBe(`${lease.account}@%`);
    } finally {
      await c.end();
    }
  });

  it("the MariaDB client logs in over TLS with caching_sha2_password", async () => {
    const r = await cli(lease, ["--ssl"], "SELECT CURRENT_USER();\n\\s\n");
    expect(r.stderr).toBe("");
    expect(r.stdout.split("\n")[0]).toBe(`${lease.account}@%`);
    expect(r.stdout).toMatch(/SSL:\s+Cipher in use is/);
  });

  it("the MariaDB client logs in without TLS (RSA)", async () => {
    const r = await cli(lease, ["--skip-ssl"], "SELECT CURRENT_USER();\n\\s\n");
    expect(r.stderr).toBe("");
    expect(r.stdout.split("\n")[0]).toBe(`${lease.account}@%`);
    expect(r.stdout).toMatch(/SSL:\s+Not in use/);
  });

  it("the MariaDB client may use mysql_clear_password over TLS", async () => {
    const r = await cli(lease, [
      "--ssl",
      "--default-auth=mysql_clear_password",
      "-e",
      "SELECT CURRENT_USER()",
    ]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe(`${lease.account}@%`);
  });
});

describe("the listener's own login to a server", () => {
  // MariaDB asks for mysql_native_password (every test above); caching_sha2_password is MySQL 8's.
  // A MySQL listener is a caching_sha2_password server that always wants full authentication:
  // the backend leg is checked against it, over TLS and with the server's RSA key.
  it.each([
    ["RSA", undefined],
    ["TLS", { rejectUnauthorized: false }],
  ] as const)("logs in with caching_sha2_password full authentication (%s)", async (_, ssl) => {
    const login = await loginToMysql({
      target: { host: "127.0.0.1", port, ...(ssl ? { ssl } : {}) },
      username: lease.leaseId,
      password: lease.token,
      terms: {
        capabilities:
          CAP.protocol41 | CAP.secureConnection | CAP.pluginAuth | CAP.transactions | CAP.multiResults,
        mariadbCapabilities: 0,
        maxPacket: 1 << 24,
        charset: 45,
        database: DB,
        attrs: undefined,
      },
      maxMessageBytes: 1 << 20,
      signal: new AbortController().signal,
      onGreeting: (g) => expect(g.authPlugin).toBe("caching_sha2_password"),
    });
    expect(login.ok[0]).toBe(0);
    const want = `${lease.account}@%`;
    const answer = new Promise<string>((resolve) => {
      let got = "";
      login.socket.on("data", (c: Buffer) => {
        got += c.toString("latin1");
        if (got.includes(want)) resolve(got);
      });
    });
    login.socket.resume();
    login.socket.write(packet(0, Buffer.from("\x03SELECT CURRENT_USER()", "latin1")));
    expect(await answer).toContain(want);
    login.socket.destroy();
  });
});

describe("MySQL listener refusals", () => {
  it("a wrong token gets 1045 over TLS and over RSA", async () => {
    const wrong = { ...lease, token: `${lease.token.slice(0, -4)}AAAA` };
    for (const tls of [true, false]) {
      const err = await loginError(wrong, { tls });
      expect(err.errno).toBe(1045);
      expect(err.sqlState).toBe("28000");
    }
  });

  it("the MariaDB client with a wrong token gets ERROR 1045", async () => {
    const r = await cli({ ...lease, token: "not-the-token" }, ["-e", "SELECT 1"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ERROR 1045 \(28000\)/);
  });

  it("a token of another resource's lease gets 1045", async () => {
    const other = await h.checkout(OTHER);
    expect((await loginError(other)).errno).toBe(1045);
  });

  it("mysql_clear_password without TLS is refused (1045)", async () => {
    const r = await cli(lease, ["--skip-ssl", "--default-auth=mysql_clear_password", "-e", "SELECT 1"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ERROR 1045 .*TLS/);
  });

  it("COM_CHANGE_USER to another account is refused and the session closed", async () => {
    const c = await viaProxy(lease);
    const closed = closedByListener(c);
    const err = await c.changeUser({ user: "root", password: "" }).then(
      () => undefined,
      (e: { errno?: number; message: string }) => e,
    );
    expect(err?.errno).toBe(1045);
    expect(err?.message).toContain("COM_CHANGE_USER");
    await closed;
  });

  it("a statement that would set the sealed password gets 1227, never reaches the server, and ends the session", async () => {
    const c = await viaProxy(lease);
    const closed = closedByListener(c);
    const [rows] = await c.query<RowDataPacket[]>("SELECT 'password' AS p");
    expect(rows).toEqual([{ p: "password" }]);
    const err = await c.query("ALTER USER CURRENT_USER() IDENTIFIED BY 'chosen-by-the-agent'").then(
      () => undefined,
      (e: { errno?: number; message: string }) => e,
    );
    expect(err?.errno).toBe(1227);
    await closed;
    // The server still has the sealed password: the listener still logs in with it.
    const again = await viaProxy(lease);
    expect(await currentUser(again)).toBe(`${lease.account}@%`);
    await again.end();
    const r = await cli(lease, ["-e", "SET PASSWORD = PASSWORD('chosen-by-the-agent')"]);
    expect(r.stderr).toMatch(/ERROR 1227 \(42000\)/);
    const denied = await waitFor(
      "the refusal's decision record",
      async () =>
        (await h.auditRecords()).filter(
          (x) =>
            x.event === "decision" &&
            x.scope === "proxy_statement" &&
            x.tool === "mysql" &&
            x.lease_id === lease.leaseId,
        ).length >= 2 && (await h.auditRecords()).filter((x) => x.event === "decision" && x.tool === "mysql"),
    );
    expect(denied[0]).toMatchObject({ decision: "deny", account: lease.account });
    expect(JSON.stringify(await h.auditRecords())).not.toContain("chosen-by-the-agent");
  });

  it("a lease past proxy.maxConnectionsPerLease gets 1040 naming the setting", async () => {
    const capped = await h.manager({ maxConnectionsPerLease: 1 });
    const p = listenerPort(capped, RESOURCE);
    const held = await viaProxy(lease, { port: p });
    try {
      const err = await loginError(lease, { port: p });
      expect(err.errno).toBe(1040);
      expect(err.message).toContain("proxy.maxConnectionsPerLease");
    } finally {
      await held.end();
    }
  });
});

describe("MySQL listener under abuse", () => {
  /** The ERR packet after the greeting in what the listener sent: [code, message]. */
  function lastError(got: Buffer): [number, string] {
    let i = 0;
    let last: Buffer | undefined;
    while (i + 4 <= got.length) {
      const len = got.readUIntLE(i, 3);
      last = got.subarray(i + 4, i + 4 + len);
      i += 4 + len;
    }
    const err = last?.[0] === 0xff ? last : undefined;
    if (!err) throw new Error("no ERR packet");
    return [err.readUInt16LE(1), err.toString("utf8", 3)];
  }

  it("a client that never answers the greeting is closed with 1043", async () => {
    const impatient = await h.manager({ handshakeTimeoutMs: 300 });
    const s = await rawConnect(listenerPort(impatient, RESOURCE));
    const [code, message] = lastError(await readUntilClose(s));
    expect(code).toBe(1043);
    expect(message).toContain("Bad handshake");
  });

  it("garbage instead of a handshake response gets 1043 and a closed connection", async () => {
    const s = await rawConnect(port);
    const done = readUntilClose(s);
    s.write(Buffer.from([5, 0, 0, 1, 1, 2, 3, 4, 5]));
    expect(lastError(await done)[0]).toBe(1043);
  });

  it("when the login slots are full the oldest idle connection gets 1040 for a real client", async () => {
    const small = await h.manager({ maxHandshakes: 1, handshakeTimeoutMs: 60_000 });
    const p = listenerPort(small, RESOURCE);
    const idle = await rawConnect(p);
    const idleClosed = readUntilClose(idle);
    const c = await viaProxy(lease, { port: p });
    try {
      expect(await currentUser(c)).toBe(`${lease.account}@%`);
      const [code, message] = lastError(await idleClosed);
      expect(code).toBe(1040);
      expect(message).toContain("too many connections are logging in");
    } finally {
      await c.end();
    }
  });
});

describe("the end of a lease ends its MySQL connections", () => {
  it("revocation closes the open connection and refuses the token", async () => {
    const l = await h.checkout(RESOURCE);
    const c = await viaProxy(l);
    const closed = closedByListener(c);
    expect(await currentUser(c)).toBe(`${l.account}@%`);
    expect(proxy.connections(l.leaseId)).toBe(1);
    await h.node.leaseService.revoke(l.leaseId, "test", "operator", { requestId: "req_revoke" });
    await closed;
    expect(proxy.connections(l.leaseId)).toBe(0);
    expect((await loginError(l)).errno).toBe(1045);
  });
});

describe("audit of MySQL connections", () => {
  it("records connect, statements and the session; a password statement keeps only its digest", async () => {
    const c = await viaProxy(lease);
    await c.query("SELECT 'audit-me' AS a");
    await c.query("SELECT PASSWORD('not-a-real-password') AS p").catch(() => undefined);
    await c.end();
    const mine = async () =>
      (await h.auditRecords()).filter((x) => x.lease_id === lease.leaseId && x.tool === "mysql");
    const session = await waitFor("the session record", async () =>
      (await mine()).find((x) => x.scope === "proxy_session" && Number(x.bytes_in) > 0),
    );
    expect(session).toMatchObject({
      event: "tool_call",
      resource: RESOURCE,
      account: lease.account,
      decision: "allow",
    });
    // Earlier tests' sessions of the same lease are in the trail too: wait for this one's statements.
    const digestOnly = `sha256:${createHash("sha256").update("SELECT PASSWORD('not-a-real-password') AS p").digest("hex")}`;
    const statements = await waitFor("both statement records", async () => {
      const st = (await mine()).filter((x) => x.scope === "proxy_statement");
      return (
        st.some((x) => x.statement === "SELECT 'audit-me' AS a") &&
        st.some((x) => x.digest === digestOnly && x.statement === undefined) &&
        st
      );
    });
    expect(JSON.stringify(statements)).not.toContain("not-a-real-password");
    const connects = (await h.auditRecords()).filter(
      (x) => x.scope === "proxy_connect" && x.lease_id === lease.leaseId,
    );
    expect(connects.length).toBeGreaterThan(0);
    const audit = JSON.stringify(await h.auditRecords());
    const logs = h.logLines.join("");
    for (const s of h.secrets) {
      expect(audit.includes(s)).toBe(false);
      expect(logs.includes(s)).toBe(false);
    }
  });
});
