import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, LeaseholdClientError } from "../../sidecar/client/index.js";
import { StackClient } from "../support/e2e-client.js";
import { cliPath, repoRoot, spawnCli } from "../support/sidecar-process.js";
import { agentsReadPolicy, type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/**
 * `leasehold exec` as a shell agent uses it: the built CLI checks out with the agent's key, runs
 * a real command with the connection in its environment, and checks in when it ends, however
 * it ends.
 */

const RESOURCE = "orders-db";
const PROXIED = "ledger-db";
const ACCOUNT = "app_orders_1";
const PROXY_ACCOUNT = "app_ledger_1";
const POLICY =
  agentsReadPolicy([RESOURCE, PROXIED]) +
  `
@id("writes-need-approval")
permit (principal, action == Action::"checkout", resource == Resource::"${RESOURCE}")
when { context.intent == "write" && context.approved };

@id("writers-use-their-lease")
permit (principal, action in [Action::"reveal", Action::"renew"], resource == Resource::"${RESOURCE}")
when { context.intent == "write" };
`;

let stack: Stack;
let c: StackClient;
let n = 0;

interface Exec {
  child: ChildProcess;
  /** What exec wrote to stderr so far. */
  stderr: () => string;
  result: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Starts `leasehold exec` for agent a with LEASEHOLD_ADDR and LEASEHOLD_AGENT_KEY. */
async function exec(
  resource: string,
  command: string[],
  extra: string[] = [],
  where: { configFile?: string } = {},
): Promise<Exec> {
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    LANG: "C",
    ...(where.configFile === undefined ? { LEASEHOLD_ADDR: stack.sidecar.url } : {}),
    LEASEHOLD_AGENT_KEY: await c.keyFile("a"),
  };
  const args = [
    ...(where.configFile === undefined ? [] : ["--config", where.configFile]),
    "exec",
    "--resource",
    resource,
    "--task",
    "EXEC-1",
    "--intent",
    "read",
    ...extra,
    "--",
    ...command,
  ];
  const p = spawnCli(args, env);
  return { child: p.child, result: p.result, stderr: p.stderr };
}

/** A child that writes its environment, its pid and its argv to files, then runs `then`. */
function probe(then: string): { files: { env: string; pid: string; argv: string }; command: string[] } {
  n += 1;
  const base = join(stack.dir, `probe-${n}`);
  const files = { env: `${base}.env`, pid: `${base}.pid`, argv: `${base}.argv` };
  const script = `env > '${files.env}'; cat /proc/$$/cmdline > '${files.argv}'; echo $$ > '${files.pid}.tmp'; mv '${files.pid}.tmp' '${files.pid}'; ${then}`;
  return { files, command: ["sh", "-c", script] };
}

function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

async function childEnv(file: string): Promise<Record<string, string>> {
  const env = parseEnv(await readFile(file, "utf8"));
  for (const k of ["PGPASSWORD", "LEASEHOLD_PASSWORD"]) if (env[k]) c.secrets.push(env[k]);
  return env;
}

/** The lease as the operator sees it. */
async function lease(id: string): Promise<Record<string, unknown>> {
  const r = await c.http("GET", `/v1/leases/${id}`, { token: await c.adminToken() });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  return (r.json.lease ?? r.json) as Record<string, unknown>;
}

/** The lease ended by check-in and the password the child saw no longer logs in. */
async function expectCheckedIn(env: Record<string, string>): Promise<void> {
  const id = env.LEASEHOLD_LEASE_ID ?? "";
  expect(id).not.toBe("");
  const l = await lease(id);
  expect(l.state).toBe("ended");
  expect(l.end_reason).toBe("checkin");
  await c.waitForAccounts(RESOURCE, "available");
  expect(await stack.canLogin(ACCOUNT, env.PGPASSWORD ?? "")).toBe(false);
}

beforeAll(async () => {
  stack = await startStack({ policy: POLICY });
  c = new StackClient(stack);
  c.secrets.push(stack.adminPassword);
  await c.adminToken();
  await stack.createRole(ACCOUNT, "initial-pass-1234567");
  await stack.createRole(PROXY_ACCOUNT, "initial-pass-7654321");
  c.secrets.push("initial-pass-1234567", "initial-pass-7654321");
  await stack.asSuperuser(async (su) => {
    await su.query("GRANT pg_signal_backend TO leasehold_admin");
    await su.query("create table orders (id int primary key, total numeric)");
    await su.query("insert into orders values (1, 20.25), (2, 40.25)");
    await su.query(`grant select on orders to ${PROXY_ACCOUNT}`);
  });
  const common = {
    adapter: "postgres",
    connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
    admin: { username: "leasehold_admin", password: stack.adminPassword },
    lease: { defaultTtl: 60, maxTtl: 600 },
  };
  const regs = [
    { name: RESOURCE, ...common, accounts: [ACCOUNT] },
    { name: PROXIED, ...common, accounts: [PROXY_ACCOUNT], reveal: false, proxy: { port: 0 } },
  ];
  for (const reg of regs) {
    const file = join(stack.dir, `${reg.name}.yaml`);
    await writeFile(file, stringify(reg));
    const r = await stack.cli("resources", "register", "-f", file);
    expect(r.code, r.stderr).toBe(0);
    await c.waitForAccounts(reg.name, "available");
  }
}, 180_000);

afterAll(async () => {
  await stack?.close();
});

describe("leasehold exec: a command runs with a leased credential and it is checked in after", () => {
  it("real psql connects as the leased account; the lease is checked in after it exits", async () => {
    const e = await exec(RESOURCE, ["psql", "-X", "-At", "-c", "select current_user"], ["--tool", "psql"]);
    const r = await e.result;
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(ACCOUNT);
    const checkins = (await c.auditRecords()).filter((x) => x.event === "checkin" && x.resource === RESOURCE);
    expect(checkins).toHaveLength(1);
    await c.waitForAccounts(RESOURCE, "available");
  });

  it("the child gets PG* variables, no password in its argv, and exec exits with its status", async () => {
    const p = probe("exit 7");
    const r = await (await exec(RESOURCE, p.command)).result;
    expect(r.code).toBe(7);
    const env = await childEnv(p.files.env);
    expect(env).toMatchObject({
      PGHOST: "127.0.0.1",
      PGPORT: String(stack.pg.port),
      PGUSER: ACCOUNT,
      PGDATABASE: "postgres",
      LEASEHOLD_USER: ACCOUNT,
    });
    expect(env.PGPASSWORD?.length).toBeGreaterThanOrEqual(16);
    const argv = await readFile(p.files.argv, "utf8");
    expect(argv.split("\0")[0]).toBe("sh");
    expect(argv.includes(env.PGPASSWORD ?? "")).toBe(false);
    await expectCheckedIn(env);
  });

  it("SIGTERM to exec reaches the child, and the lease is checked in", async () => {
    const p = probe("exec sleep 600");
    const e = await exec(RESOURCE, p.command);
    await waitFor("the child to start", async () => existsSync(p.files.pid));
    const env = await childEnv(p.files.env);
    const childPid = Number((await readFile(p.files.pid, "utf8")).trim());
    // Neither exec's argv nor the running child's shows the password.
    for (const pid of [e.child.pid, childPid]) {
      const argv = await readFile(`/proc/${pid}/cmdline`, "utf8");
      expect(argv.length).toBeGreaterThan(0);
      expect(argv.includes(env.PGPASSWORD ?? "")).toBe(false);
    }
    e.child.kill("SIGTERM");
    const r = await e.result;
    expect(r.code).toBe(143);
    expect(existsSync(`/proc/${childPid}`)).toBe(false);
    await expectCheckedIn(env);
  });

  it("a child killed with SIGKILL: exec exits 137 and checks the lease in", async () => {
    const p = probe("exec sleep 600");
    const e = await exec(RESOURCE, p.command);
    await waitFor("the child to start", async () => existsSync(p.files.pid));
    const env = await childEnv(p.files.env);
    process.kill(Number((await readFile(p.files.pid, "utf8")).trim()), "SIGKILL");
    const r = await e.result;
    expect(r.code).toBe(137);
    await expectCheckedIn(env);
  });

  it("proxy mode: psql reaches the listener with the lease id as user and the lease token as password", async () => {
    const p = probe("exec psql -X -At -c 'select current_user'");
    const r = await (await exec(PROXIED, p.command, ["--tool", "psql"])).result;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(PROXY_ACCOUNT);
    const env = await childEnv(p.files.env);
    expect(env.PGUSER).toBe(env.LEASEHOLD_LEASE_ID);
    expect(env.PGHOST).toBe("127.0.0.1");
    expect(env.PGPORT).not.toBe(String(stack.pg.port));
    const l = await lease(env.LEASEHOLD_LEASE_ID ?? "");
    expect(l).toMatchObject({ state: "ended", end_reason: "checkin" });
    await c.waitForAccounts(PROXIED, "available");
  });

  it("the SDK's proxy mode: createClient() from LEASEHOLD_* and withConnection run a query with pg", async () => {
    const saved = { addr: process.env.LEASEHOLD_ADDR, key: process.env.LEASEHOLD_AGENT_KEY };
    process.env.LEASEHOLD_ADDR = stack.sidecar.url;
    process.env.LEASEHOLD_AGENT_KEY = await c.keyFile("a");
    let client: ReturnType<typeof createClient>;
    try {
      client = createClient();
    } finally {
      for (const [k, v] of [
        ["LEASEHOLD_ADDR", saved.addr],
        ["LEASEHOLD_AGENT_KEY", saved.key],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    const req = { task: { id: "SDK-1" }, intent: { action: "read", tool: "pg" }, ttl: 60 };
    let leaseId = "";
    const rows = await client.withConnection(PROXIED, req, async (conn, l) => {
      leaseId = l.id;
      expect(conn).toMatchObject({ host: "127.0.0.1", user: l.id });
      expect(JSON.stringify(conn)).not.toContain(conn.password);
      c.secrets.push(conn.password);
      const pc = new pg.Client({ ...conn, password: conn.password, database: "postgres" });
      await pc.connect();
      try {
        return (await pc.query<{ who: string }>("select current_user as who")).rows;
      } finally {
        await pc.end();
      }
    });
    expect(rows).toEqual([{ who: PROXY_ACCOUNT }]);
    expect((await lease(leaseId)).end_reason).toBe("checkin");
    // A revealing resource has no listener: withConnection says so, and checks the lease in.
    const err = await client.withConnection(RESOURCE, req, async () => 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeaseholdClientError);
    expect((err as LeaseholdClientError).code).toBe("no_proxy");
    await c.waitForAccounts(RESOURCE, "available");
    // withCredential on a listener-only resource is refused, and the refusal names withConnection.
    const sealed = await client.withCredential(PROXIED, req, async () => 1).catch((e: unknown) => e);
    expect(sealed).toMatchObject({ code: "policy_denied" });
    expect((sealed as Error).message).toContain("withConnection");
    await c.waitForAccounts(PROXIED, "available");
  });

  it("a shell script: eval checkout's exports, run psql, then leasehold checkin", async () => {
    const script = [
      'eval "$("$NODE" "$CLI" checkout --resource orders-db --task SH-1 --intent read --tool psql)" || exit 3',
      'psql -X -At -c "select current_user"',
      'echo "$LEASEHOLD_LEASE_ID" > "$OUT"',
      '"$NODE" "$CLI" checkin "$LEASEHOLD_LEASE_ID"',
    ].join("\n");
    const out = join(stack.dir, "script.lease");
    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      LEASEHOLD_ADDR: stack.sidecar.url,
      LEASEHOLD_AGENT_KEY: await c.keyFile("a"),
      NODE: process.execPath,
      CLI: cliPath(),
      OUT: out,
    };
    const sh = spawn("sh", ["-c", script], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    sh.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    sh.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((r) => sh.once("close", r));
    expect(code, stderr).toBe(0);
    expect(stdout.trim()).toBe(ACCOUNT);
    expect(stderr).toContain("checked in");
    const id = (await readFile(out, "utf8")).trim();
    expect((await lease(id)).end_reason).toBe("checkin");
    await c.waitForAccounts(RESOURCE, "available");
  });

  it("a checkout that needs an approval says where it waits, and runs psql once approved", async () => {
    const e = await exec(RESOURCE, ["psql", "-X", "-At", "-c", "select current_user"], ["--intent", "write"]);
    let id = "";
    await waitFor("exec to say which approval it waits for", async () => {
      id = /waits for approval (apr_[A-Za-z0-9_-]+)/.exec(e.stderr())?.[1] ?? "";
      return id !== "";
    });
    expect(e.stderr()).toContain(`leasehold approvals approve ${id}`);
    const ok = await stack.cli("approvals", "approve", id, "--as", "alice@example.org");
    expect(ok.code, ok.stderr).toBe(0);
    const r = await e.result;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(ACCOUNT);
    await c.waitForAccounts(RESOURCE, "available");
  });

  it("SIGINT while exec waits for an approval gives up: nothing runs, exit 130", async () => {
    const p = probe("exit 0");
    const e = await exec(RESOURCE, p.command, ["--intent", "write"]);
    await waitFor("exec to wait for an approval", async () => e.stderr().includes("waits for approval"));
    e.child.kill("SIGINT");
    const r = await e.result;
    expect(r.code).toBe(130);
    expect(existsSync(p.files.env)).toBe(false);
  });

  it("a revoked lease stops the command: the next renewal is refused and the child gets SIGTERM", async () => {
    const p = probe("exec sleep 600");
    const e = await exec(RESOURCE, p.command, ["--ttl", "3"]);
    await waitFor("the child to start", async () => existsSync(p.files.pid));
    const env = await childEnv(p.files.env);
    const revoke = await stack.cli("leases", "revoke", env.LEASEHOLD_LEASE_ID ?? "", "--reason", "e2e exec");
    expect(revoke.code, revoke.stderr).toBe(0);
    const r = await e.result;
    expect(r.code).toBe(143);
    expect(r.stderr).toContain("stopping sh");
    expect((await lease(env.LEASEHOLD_LEASE_ID ?? "")).end_reason).toBe("revoked");
    await c.waitForAccounts(RESOURCE, "available");
  });

  it("the example agent in proxy mode (LEASEHOLD_MODE=proxy) queries through the listener", async () => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(repoRoot(), "examples/agent/query-orders.ts")],
      {
        cwd: repoRoot(),
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: process.env.HOME ?? "/tmp",
          LEASEHOLD_ADDR: stack.sidecar.url,
          LEASEHOLD_AGENT_KEY: await c.keyFile("a"),
          LEASEHOLD_RESOURCE: PROXIED,
          LEASEHOLD_MODE: "proxy",
          TASK_ID: "EXAMPLE-PROXY",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((r) => child.once("close", r));
    expect(code, stderr).toBe(0);
    const line = JSON.parse(stdout.trim()) as { lease: string; account: string; result: unknown };
    expect(line).toMatchObject({ account: PROXY_ACCOUNT, result: { orders: 2, total: "60.50" } });
    expect((await lease(line.lease)).end_reason).toBe("checkin");
    // The listener, not the agent, audits the session.
    await waitFor("the example's proxied session in the audit file", async () =>
      (await c.auditRecords()).some(
        (r) => r.lease_id === line.lease && r.scope === "proxy_session" && r.decision === "allow",
      ),
    );
    await c.waitForAccounts(PROXIED, "available");
  });

  it("without LEASEHOLD_ADDR the address comes from --config's listen (nothing else of it is read)", async () => {
    // The stack's config holds ${LH_TEST_VAULT_TOKEN}, unset here: only `listen` is read.
    const e = await exec(RESOURCE, ["psql", "-X", "-At", "-c", "select current_user"], ["--tool", "psql"], {
      configFile: stack.configFile,
    });
    const r = await e.result;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(ACCOUNT);
    await c.waitForAccounts(RESOURCE, "available");
  });

  it("a refused checkout runs nothing and says why", async () => {
    const p = probe("exit 0");
    const r = await (await exec(RESOURCE, p.command, ["--intent", "delete"])).result;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("policy_denied");
    expect(existsSync(p.files.env)).toBe(false);
  });

  it("no password or token reached the sidecar's output or the audit file", async () => {
    const logs = stack.sidecar.output();
    const audit = await readFile(join(stack.dir, "state", "audit.jsonl"), "utf8");
    expect(c.secrets.length).toBeGreaterThan(4);
    for (const s of c.secrets) {
      expect(logs.includes(s)).toBe(false);
      expect(audit.includes(s)).toBe(false);
    }
  });
});
