import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { run, toolEnv } from "../proxy/processes.js";
import { StackClient } from "../support/e2e-client.js";
import { type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/**
 * Issue 16, attacks 10 and 11, against the built sidecar: an agent holding a lease on a
 * resource that never reveals its password cannot change that password through the PostgreSQL
 * listener, and a flood of idle connections cannot keep a real client out of the listener.
 */

const PSQL = "/usr/bin/psql";
const RESOURCE = "sealed-db";
const ACCOUNTS = ["app_sealed_1", "app_sealed_2", "app_sealed_3"];
const POLICY = `@id("agents-read-sealed")
permit (
  principal,
  action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"],
  resource == Resource::"${RESOURCE}"
)
when { context.intent == "read" };
`;

let stack: Stack;
let c: StackClient;

interface Lease {
  id: string;
  token: string;
  port: number;
  account: string;
}

async function checkout(): Promise<Lease> {
  const res = await c.http("POST", "/v1/checkout", {
    token: await c.assertion("a"),
    body: {
      resource: RESOURCE,
      task: { id: "SEALED-1" },
      intent: { action: "read", tool: "psql" },
      ttl: 300,
    },
  });
  expect(res.status, JSON.stringify(res.json)).toBe(201);
  const token = res.json.token as string;
  c.secrets.push(token);
  const proxy = res.json.proxy as { port: number };
  const l = res.json.lease as { id: string; account: string };
  return { id: l.id, token, port: proxy.port, account: l.account };
}

function viaProxy(l: Lease): pg.Client {
  const client = new pg.Client({
    host: "127.0.0.1",
    port: l.port,
    user: l.id,
    password: l.token,
    database: "postgres",
  });
  client.on("error", () => undefined);
  return client;
}

/** The account's password verifier as the server stores it: unchanged unless someone set a password. */
async function verifier(account: string): Promise<string> {
  return stack.asSuperuser(async (su) => {
    const r = await su.query<{ v: string }>("select rolpassword as v from pg_authid where rolname = $1", [
      account,
    ]);
    return r.rows[0]?.v ?? "";
  });
}

beforeAll(async () => {
  stack = await startStack({
    policy: POLICY,
    // A far deadline: in the flood test only the handshake cap, never the deadline, can make room.
    config: { proxy: { auditStatements: "text", handshakeTimeoutMs: 60_000 } },
  });
  c = new StackClient(stack);
  c.secrets.push(stack.adminPassword);
  await c.adminToken();
  for (const a of ACCOUNTS) await stack.createRole(a, `initial-${randomBytes(9).toString("hex")}`);
  const reg = {
    name: RESOURCE,
    adapter: "postgres",
    connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
    admin: { username: "leasehold_admin", password: stack.adminPassword },
    accounts: ACCOUNTS,
    reveal: false,
    proxy: { port: 0 },
    lease: { defaultTtl: 60, maxTtl: 600 },
  };
  const file = join(stack.dir, `${RESOURCE}.yaml`);
  await writeFile(file, stringify(reg));
  const r = await stack.cli("resources", "register", "-f", file);
  expect(r.code, r.stderr).toBe(0);
  await c.waitForAccounts(RESOURCE, "available");
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

describe("attack 10: reveal: false cannot be bypassed by changing the password through the proxy", () => {
  let lease: Lease;
  const attempted = `Agent-chosen-${randomBytes(9).toString("hex")}`;

  it("ALTER ROLE CURRENT_USER PASSWORD gets 42501, the session goes on, and the password is unchanged", async () => {
    lease = await checkout();
    const before = await verifier(lease.account);
    const client = viaProxy(lease);
    await client.connect();
    try {
      await expect(client.query(`ALTER ROLE CURRENT_USER PASSWORD '${attempted}'`)).rejects.toMatchObject({
        code: "42501",
      });
      // The extended protocol, and the form psql's \password sends, are refused alike.
      await expect(
        client.query({
          name: "pw",
          text: `ALTER USER ${lease.account} PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vy'`,
        }),
      ).rejects.toMatchObject({ code: "42501" });
      const next = await client.query<{ who: string }>("select current_user as who");
      expect(next.rows).toEqual([{ who: lease.account }]);
    } finally {
      await client.end();
    }
    expect(await verifier(lease.account)).toBe(before);
    // The password Vault holds still works; the one the agent chose does not.
    const stored = await c.vaultAccount(RESOURCE, lease.account);
    c.secrets.push(stored.password);
    expect(await stack.canLogin(lease.account, stored.password)).toBe(true);
    expect(await stack.canLogin(lease.account, attempted)).toBe(false);
  });

  it("psql's \\password through the listener is refused and psql carries on", async () => {
    const r = await run(
      PSQL,
      [
        `host=127.0.0.1 port=${lease.port} user=${lease.id} dbname=postgres sslmode=require`,
        "-X",
        "-At",
        "-c",
        `\\password ${lease.account}`,
        "-c",
        "select 'session goes on'",
      ],
      toolEnv({ PGPASSWORD: lease.token, PGCONNECT_TIMEOUT: "10" }),
      `${attempted}\n${attempted}\n`,
    );
    expect(r.stderr).toContain("changing a role's password is not allowed");
    expect(r.stdout.trim()).toBe("session goes on");
    expect(await stack.canLogin(lease.account, attempted)).toBe(false);
  });

  it("each refusal is a decision record on the lease, with no statement text and no password", async () => {
    let refusals: Array<Record<string, unknown>> = [];
    await waitFor("three refusals in the audit file", async () => {
      refusals = (await c.auditRecords()).filter(
        (r) => r.lease_id === lease.id && r.event === "decision" && r.scope === "proxy_statement",
      );
      return refusals.length >= 3;
    });
    for (const r of refusals) {
      expect(r).toMatchObject({
        decision: "deny",
        tool: "postgres",
        resource: RESOURCE,
        account: lease.account,
        agent: "spiffe://example.org/agent/a",
        task_id: "SEALED-1",
      });
      expect(String(r.reason)).toMatch(/^42501 /);
      expect(r.statement).toBeUndefined();
    }
    const audit = await readFile(join(stack.dir, "state", "audit.jsonl"), "utf8");
    expect(audit).not.toContain(attempted);
    expect(stack.sidecar.output()).not.toContain(attempted);
    for (const s of c.secrets) expect(audit.includes(s), "a secret in the audit file").toBe(false);
  });
});

function idle(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.on("error", () => undefined);
      // Read and drop what the proxy says, so its closing the connection is seen here.
      s.resume();
      resolve(s);
    });
    s.once("error", reject);
  });
}

describe("attack 11: listeners stay reachable under abuse", () => {
  it("1,010 idle TCP connections do not keep a legitimate psql out", async () => {
    const lease = await checkout();
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 1010; i += 101) {
        sockets.push(...(await Promise.all(Array.from({ length: 101 }, () => idle(lease.port)))));
      }
      expect(sockets).toHaveLength(1010);
      await waitFor("idle connections beyond the handshake cap to be closed", () => {
        return sockets.filter((s) => !s.closed).length <= 64;
      });
      const r = await run(
        PSQL,
        [
          `host=127.0.0.1 port=${lease.port} user=${lease.id} dbname=postgres sslmode=require`,
          "-X",
          "-At",
          "-c",
          "select current_user",
        ],
        toolEnv({ PGPASSWORD: lease.token, PGCONNECT_TIMEOUT: "10" }),
      );
      expect(r.stderr).toBe("");
      expect(r.stdout.trim()).toBe(lease.account);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });

  it("the 17th logged-in connection of one lease is refused with an error naming the cap", async () => {
    const lease = await checkout();
    const clients = Array.from({ length: 16 }, () => viaProxy(lease));
    try {
      await Promise.all(clients.map((cl) => cl.connect()));
      const extra = viaProxy(lease);
      await expect(extra.connect()).rejects.toMatchObject({
        code: "53300",
        message: expect.stringContaining("proxy.maxConnectionsPerLease"),
      });
      const rows = await Promise.all(clients.map(async (cl) => (await cl.query("select 1 as n")).rows[0]));
      expect(rows).toHaveLength(16);
    } finally {
      await Promise.all(clients.map((cl) => cl.end()));
    }
  });
});
