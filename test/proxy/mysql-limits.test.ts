import { randomBytes } from "node:crypto";
import { type Connection, createConnection, type RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { createMariadbAccount, dropMariadbAccounts, mariadbRoot } from "../support/mariadb.js";
import { waitFor } from "../support/wait-for.js";
import { type Checkout, listenerPort, type ProxyHarness, startProxyHarness } from "./harness.js";

const RESOURCE = "px-mysql-limits";
const tag = randomBytes(3).toString("hex");
const ACCOUNTS = [1, 2].map((i) => `pxl${tag}_${i}`);
const ADMIN = `pxl${tag}_admin`;

let h: ProxyHarness;
let proxy: ProxyManager;

async function viaProxy(l: Checkout): Promise<Connection> {
  const c = await createConnection({
    host: "127.0.0.1",
    port: listenerPort(proxy, RESOURCE),
    user: l.leaseId,
    password: l.token,
    ssl: { rejectUnauthorized: false },
  });
  c.on("error", () => undefined);
  return c;
}

beforeAll(async () => {
  h = await startProxyHarness({ name: "proxy-mysql-limits" });
  const root = await mariadbRoot();
  const adminPassword = randomBytes(18).toString("base64url");
  h.secrets.push(adminPassword);
  try {
    for (const a of ACCOUNTS) {
      const pw = randomBytes(18).toString("base64url");
      h.secrets.push(pw);
      await createMariadbAccount(root, a, pw);
    }
    await createMariadbAccount(root, ADMIN, adminPassword);
    await root.query(`GRANT CREATE USER ON *.* TO '${ADMIN}'@'%'`);
  } finally {
    await root.end();
  }
  await h.register({
    adapter: "mysql",
    connection: { host: "127.0.0.1", port: 3306 },
    admin: { username: ADMIN, password: adminPassword },
    reveal: false,
    rotation: { terminateSessions: false },
    name: RESOURCE,
    accounts: ACCOUNTS,
    proxy: { port: 0, limits: { statementsPerSecond: 4, bytesReturned: 100_000 } },
  });
  proxy = await h.manager();
}, 180_000);

afterAll(async () => {
  await h?.close();
  await dropMariadbAccounts(...ACCOUNTS, ADMIN).catch(() => undefined);
});

describe("proxy.limits on the MySQL listener", () => {
  it("a result bigger than bytesReturned is cut off, audited, and the lease logs in no more (1226)", async () => {
    const l = await h.checkout(RESOURCE);
    const c = await viaProxy(l);
    const [small] = await c.query<RowDataPacket[]>("SELECT 1 AS one");
    expect(small).toEqual([{ one: 1 }]);
    const err = await c.query("SELECT REPEAT('x', 300000) AS big").then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    await c.end().catch(() => undefined);
    const rec = await waitFor("the proxy_limit record", async () =>
      (await h.auditRecords()).find((r) => r.scope === "proxy_limit" && r.lease_id === l.leaseId),
    );
    expect(rec).toMatchObject({ event: "decision", decision: "deny", tool: "mysql" });
    const again = await viaProxy(l).then(
      async (c2) => {
        await c2.end();
        return undefined;
      },
      (e: { errno?: number; message: string }) => e,
    );
    expect(again?.errno).toBe(1226);
    expect(again?.message).toContain("proxy.limits.bytesReturned");
  });

  it("a burst over statementsPerSecond is held back, every statement answered", async () => {
    const l = await h.checkout(RESOURCE, { agent: "b" });
    const c = await viaProxy(l);
    try {
      const started = Date.now();
      const got: number[] = [];
      for (let i = 0; i < 14; i++) {
        const [rows] = await c.query<RowDataPacket[]>(`SELECT ${i} AS i`);
        got.push(Number(rows[0]?.i));
      }
      expect(got).toEqual(Array.from({ length: 14 }, (_, i) => i));
      // 4 at once, then 4 a second: the client is read again only once the lease is out of debt,
      // so the 14th is not even sent before (13 - 4) / 4 = 2.25 s.
      expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    } finally {
      await c.end();
    }
  });
});
