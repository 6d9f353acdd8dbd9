import { spawnSync } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run, toolEnv } from "../proxy/processes.js";
import { expectError, StackClient } from "../support/e2e-client.js";
import { asUser, canMakeOsUsers, makeOsUser, type OsUser } from "../support/os-users.js";
import { startRedisServer, type TestRedisServer } from "../support/redis-server.js";
import { spawnCli } from "../support/sidecar-process.js";
import { agentsReadPolicy, type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/**
 * Issue 22: a lease is bound to the local caller that checked it out. Two OS users made here:
 * A checks out (with curl, as an agent's shell would) and uses the lease through the PostgreSQL
 * and Redis listeners and the HTTP API; B, holding the same lease id and token, is refused on
 * each, and the audit trail names both callers. Then `bindCaller: [uid, process]` (a process of
 * the same user outside the agent's tree is refused; `leasehold exec -- psql` works) and
 * `bindCaller: [uid, exe]` (the token used from curl, where node checked out, is refused).
 */

const PSQL = "/usr/bin/psql";
const REDIS_CLI = "/usr/bin/redis-cli";
const CURL = "/usr/bin/curl";
const ROOT = canMakeOsUsers();
const RESOURCES = ["ledger-db", "orders-db", "sealed-redis"];

interface Lease {
  readonly id: string;
  readonly token: string;
  readonly proxy?: { host: string; port: number; username: string };
}

let base: string;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), "leasehold-callers-"));
  await chmod(base, 0o711);
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

function pgResource(stack: Stack, name: string, account: string, reveal: boolean) {
  return {
    name,
    adapter: "postgres",
    connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
    admin: { username: "leasehold_admin", password: stack.adminPassword },
    accounts: [account],
    lease: { defaultTtl: 120, maxTtl: 600 },
    ...(reveal ? {} : { reveal: false, proxy: { port: 0 } }),
  };
}

/** curl as `user` (or as this test's own uid), the bearer token passed in the environment, never in argv. */
async function curlAs(
  user: OsUser | undefined,
  url: string,
  opts: { method?: string; token: string; body?: unknown },
): Promise<{ status: number; json: Record<string, unknown> }> {
  const args = [
    "-s",
    "-X",
    opts.method ?? "GET",
    "-H",
    "x-leasehold-request: true",
    "-H",
    "content-type: application/json",
    "-w",
    "\n%{http_code}",
  ];
  const script = `exec ${CURL} -H "authorization: Bearer $LH_TOKEN" "$@"`;
  const full = [...args, ...(opts.body === undefined ? [] : ["--data", JSON.stringify(opts.body)]), url];
  const [file, argv] = user
    ? asUser(user, "/bin/sh", ["-c", script, "sh", ...full])
    : ["/bin/sh", ["-c", script, "sh", ...full]];
  const r = await run(file, argv, toolEnv({ LH_TOKEN: opts.token }));
  const lines = r.stdout.trimEnd().split("\n");
  const status = Number(lines.pop());
  const text = lines.join("\n");
  return { status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

function psqlConn(l: Lease): string {
  const p = l.proxy;
  if (!p) throw new Error("not a proxy lease");
  return `host=${p.host} port=${p.port} user=${p.username} dbname=postgres sslmode=require connect_timeout=10`;
}

async function psqlAs(user: OsUser | undefined, l: Lease) {
  const args = [psqlConn(l), "-X", "-At", "-c", "select current_user"];
  const [file, argv] = user ? asUser(user, PSQL, args) : [PSQL, args];
  return run(file, argv, toolEnv({ PGPASSWORD: l.token }));
}

async function mismatches(c: StackClient, leaseId: string) {
  return (await c.auditRecords()).filter((r) => r.event === "caller_mismatch" && r.lease_id === leaseId);
}

describe.skipIf(!ROOT)("bindCaller [uid]: user B holding user A's lease id and token is refused", () => {
  let stack: Stack;
  let c: StackClient;
  let rs: TestRedisServer;
  let a: OsUser;
  let b: OsUser;
  let ledger: Lease;
  let orders: Lease;
  let sealed: Lease;

  /** User A checks out with curl: the lease is bound to A's uid. */
  async function checkoutAsA(resource: string, tool: string): Promise<Lease> {
    const r = await curlAs(a, `${stack.sidecar.url}/v1/checkout`, {
      method: "POST",
      token: await c.assertion("a"),
      body: { resource, task: { id: "BIND-1" }, intent: { action: "read", tool }, ttl: 120 },
    });
    expect(r.status, JSON.stringify(r.json)).toBe(201);
    const token = r.json.token as string;
    c.secrets.push(token);
    return {
      id: (r.json.lease as { id: string }).id,
      token,
      proxy: r.json.proxy as Lease["proxy"],
    };
  }

  beforeAll(async () => {
    a = makeOsUser("a");
    b = makeOsUser("b");
    [stack, rs] = await Promise.all([
      startStack({ policy: agentsReadPolicy(RESOURCES) }),
      startRedisServer(),
    ]);
    c = new StackClient(stack);
    c.secrets.push(stack.adminPassword, "initial-ledger-1234", "initial-orders-1234", "initial-sealed-1234");
    c.secrets.push(rs.admin.password);
    await stack.createRole("app_ledger", "initial-ledger-1234");
    await stack.createRole("app_orders", "initial-orders-1234");
    await rs.addUser("app_sealed", "initial-sealed-1234");
    await c.register(pgResource(stack, "ledger-db", "app_ledger", false));
    await c.register(pgResource(stack, "orders-db", "app_orders", true));
    await c.register({
      name: "sealed-redis",
      adapter: "redis-acl",
      connection: { host: "127.0.0.1", port: rs.port },
      admin: rs.admin,
      accounts: ["app_sealed"],
      reveal: false,
      proxy: { port: 0 },
    });
    ledger = await checkoutAsA("ledger-db", "psql");
    orders = await checkoutAsA("orders-db", "curl");
    sealed = await checkoutAsA("sealed-redis", "redis-cli");
  }, 180_000);

  afterAll(async () => {
    await stack?.close();
    await rs?.stop();
    a?.remove();
    b?.remove();
  });

  it("the PostgreSQL listener: A's psql runs; B's psql and this test's own pg client get 28P01", async () => {
    const ok = await psqlAs(a, ledger);
    expect(ok.stderr).toBe("");
    expect(ok.stdout.trim()).toBe("app_ledger");

    const refused = await psqlAs(b, ledger);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).toBe("");
    expect(refused.stderr).toContain("password authentication failed");
    expect(refused.stderr).not.toContain(ledger.token);

    // The SQLSTATE, read with a client that reports it: this process is root, not A.
    const p = ledger.proxy as NonNullable<Lease["proxy"]>;
    const client = new pg.Client({
      host: p.host,
      port: p.port,
      user: p.username,
      password: ledger.token,
      database: "postgres",
      ssl: { rejectUnauthorized: false },
    });
    const err = await client.connect().then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    await client.end().catch(() => undefined);
    expect(err?.code).toBe("28P01");

    const records = await mismatches(c, ledger.id);
    const byB = records.find((r) => (r.caller as { uid?: number } | undefined)?.uid === b.uid);
    expect(byB, JSON.stringify(records)).toMatchObject({
      scope: "uid",
      resource: "ledger-db",
      caller: { attested: true, uid: b.uid },
      bound_caller: { attested: true, uid: a.uid },
    });
    // A still holds its lease: refusing B did not end it (identity.onCallerMismatch: refuse).
    const again = await psqlAs(a, ledger);
    expect(again.stdout.trim()).toBe("app_ledger");
  });

  it("the Redis listener: A's redis-cli gets PONG; B's is refused as a wrong password", async () => {
    const p = sealed.proxy as NonNullable<Lease["proxy"]>;
    const args = ["-h", p.host, "-p", String(p.port), "--user", sealed.id, "--no-auth-warning", "ping"];
    const env = toolEnv({ REDISCLI_AUTH: sealed.token });
    const ok = await run(...asUser(a, REDIS_CLI, args), env);
    expect(ok.stdout.trim()).toBe("PONG");
    const refused = await run(...asUser(b, REDIS_CLI, args), env);
    expect(refused.stdout + refused.stderr).toMatch(/WRONGPASS|invalid username-password/i);
    expect(refused.stdout + refused.stderr).not.toContain(sealed.token);
    const records = await mismatches(c, sealed.id);
    expect(records.some((r) => (r.caller as { uid?: number }).uid === b.uid)).toBe(true);
  });

  it("the HTTP API: A's curl reads the credential; B's curl gets 401 caller_mismatch", async () => {
    const url = `${stack.sidecar.url}/v1/leases/${orders.id}/credential`;
    const ok = await curlAs(a, url, { token: orders.token });
    expect(ok.status).toBe(200);
    c.secrets.push(ok.json.password as string);
    const refused = await curlAs(b, url, { token: orders.token });
    const message = expectError({ ...refused, headers: new Headers() }, 401, "caller_mismatch");
    expect(message).toContain("uid");
    expect(JSON.stringify(refused.json)).not.toContain(String(a.uid));
    const meta = await curlAs(b, `${stack.sidecar.url}/v1/leases/${orders.id}`, { token: orders.token });
    expect(meta.status).toBe(401);
    expect(await mismatches(c, orders.id)).toHaveLength(2);
  });

  it("nothing secret reaches the sidecar's log or the audit trail", async () => {
    const log = stack.sidecar.output();
    const audit = await readFile(join(stack.dir, "state", "audit.jsonl"), "utf8");
    for (const s of c.secrets.filter(Boolean)) {
      expect(log.includes(s)).toBe(false);
      expect(audit.includes(s)).toBe(false);
    }
  });
});

describe.skipIf(!ROOT)("bindCaller [uid, process]: the agent's process tree only", () => {
  let stack: Stack;
  let c: StackClient;

  beforeAll(async () => {
    stack = await startStack({
      policy: agentsReadPolicy(RESOURCES),
      config: { identity: { bindCaller: ["uid", "process"] } },
    });
    c = new StackClient(stack);
    c.secrets.push(stack.adminPassword, "initial-ledger-5678");
    await stack.createRole("app_ledger", "initial-ledger-5678");
    await c.register(pgResource(stack, "ledger-db", "app_ledger", false));
  }, 180_000);

  afterAll(async () => {
    await stack?.close();
  });

  it("leasehold exec -- psql works; the same user's psql outside exec's tree is refused", async () => {
    const dir = await mkdtemp(join(base, "exec-"));
    const fifo = join(dir, "go");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    const envFile = join(dir, "child.env");
    const outFile = join(dir, "psql.out");
    // The child of exec: records its environment, runs psql through the listener, then waits
    // until the test has tried the lease from outside its tree.
    const script = `env > '${envFile}'; psql -X -At -c 'select current_user' > '${outFile}.tmp' 2>&1; mv '${outFile}.tmp' '${outFile}'; read go < '${fifo}'`;
    const exec = spawnCli(
      [
        "exec",
        "--resource",
        "ledger-db",
        "--task",
        "BIND-2",
        "--intent",
        "read",
        "--tool",
        "psql",
        "--",
        "sh",
        "-c",
        script,
      ],
      {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: dir,
        LANG: "C",
        PGSSLMODE: "require",
        LEASEHOLD_ADDR: stack.sidecar.url,
        LEASEHOLD_AGENT_KEY: await c.keyFile("a"),
      },
    );
    await waitFor(
      () => `psql inside exec to finish (exec stderr: ${exec.stderr()})`,
      async () =>
        readFile(outFile, "utf8").then(
          () => true,
          () => false,
        ),
    );
    expect((await readFile(outFile, "utf8")).trim()).toBe("app_ledger");
    const env: Record<string, string> = {};
    for (const line of (await readFile(envFile, "utf8")).split("\n")) {
      const eq = line.indexOf("=");
      if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
    }
    const lease: Lease = {
      id: env.LEASEHOLD_LEASE_ID ?? "",
      token: env.PGPASSWORD ?? "",
      proxy: { host: env.PGHOST ?? "", port: Number(env.PGPORT), username: env.PGUSER ?? "" },
    };
    c.secrets.push(lease.token);
    expect(lease.proxy?.username).toBe(lease.id);

    // Same uid (this test's), not a descendant of exec: refused.
    const outside = await psqlAs(undefined, lease);
    expect(outside.code).not.toBe(0);
    expect(outside.stderr).toContain("password authentication failed");
    const records = await mismatches(c, lease.id);
    expect(records.map((r) => r.scope)).toContain("process");

    await writeFile(fifo, "go\n");
    const done = await exec.result;
    expect(done.code, done.stderr).toBe(0);
    const admin = await c.adminToken();
    const l = await c.http("GET", `/v1/leases/${lease.id}`, { token: admin });
    expect(l.json.lease ?? l.json).toMatchObject({ state: "ended", end_reason: "checkin" });
  });
});

describe.skipIf(!ROOT)("bindCaller [uid, exe]: node checked out, so curl of the same user is refused", () => {
  let stack: Stack;
  let c: StackClient;

  beforeAll(async () => {
    stack = await startStack({
      policy: agentsReadPolicy(RESOURCES),
      config: { identity: { bindCaller: ["uid", "exe"] } },
    });
    c = new StackClient(stack);
    c.secrets.push(stack.adminPassword, "initial-orders-5678");
    await stack.createRole("app_orders", "initial-orders-5678");
    await c.register(pgResource(stack, "orders-db", "app_orders", true));
  }, 180_000);

  afterAll(async () => {
    await stack?.close();
  });

  it("the token works from node (this process) and is refused from curl", async () => {
    const co = await c.http("POST", "/v1/checkout", {
      token: await c.assertion("a"),
      body: {
        resource: "orders-db",
        task: { id: "BIND-3" },
        intent: { action: "read", tool: "node" },
        ttl: 120,
      },
    });
    expect(co.status, JSON.stringify(co.json)).toBe(201);
    const token = co.json.token as string;
    const id = (co.json.lease as { id: string }).id;
    c.secrets.push(token);
    const fromNode = await c.http("GET", `/v1/leases/${id}/credential`, { token });
    expect(fromNode.status).toBe(200);
    c.secrets.push(fromNode.json.password as string);
    const fromCurl = await curlAs(undefined, `${stack.sidecar.url}/v1/leases/${id}/credential`, { token });
    const message = expectError({ ...fromCurl, headers: new Headers() }, 401, "caller_mismatch");
    expect(message).toContain("executable");
    const records = await mismatches(c, id);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ scope: "exe", caller: { uid: process.getuid?.() } });
    const [record] = records as Array<{
      caller: { exe_sha256: string };
      bound_caller: { exe_sha256: string };
    }>;
    expect(record?.caller.exe_sha256).not.toBe(record?.bound_caller.exe_sha256);
    // The password it revealed to node is no secret of curl's answer.
    expect(JSON.stringify(fromCurl.json)).not.toContain(fromNode.json.password as string);
  });
});
