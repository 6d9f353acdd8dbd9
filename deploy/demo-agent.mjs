/**
 * compose.yaml's one-shot demo agent: the story of `npm run demo`, against the services of
 * `docker compose up` (a real Vault, Redis, PostgreSQL and the sidecar), one line per step.
 *
 * It plays three people: the DBA (creates the roles, registers orders-db with the admin
 * token), the agent (its own Ed25519 key, checkout, reveal, a query, check-in) and a skeptic
 * (the password the agent saw is dead, Vault's new one works, the audit chain verifies).
 * A real agent never holds the admin token or a Vault token; this script does because it also
 * plays the DBA and the skeptic.
 *
 * Settings (environment): LEASEHOLD_URL, LEASEHOLD_CLI, LEASEHOLD_ADMIN_TOKEN_FILE,
 * LEASEHOLD_TRUST_BUNDLE, LEASEHOLD_AUDIT_FILE, LEASEHOLD_AUDIENCE, PGHOST, PGPORT, PGUSER,
 * PGPASSWORD (a superuser, for the DBA's part), TARGET_PGHOST / TARGET_PGPORT (how the sidecar
 * reaches PostgreSQL, when it differs), VAULT_ADDR, VAULT_TOKEN, VAULT_MOUNT, LEASEHOLD_VAULT_PREFIX.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";

const env = process.env;
const URL_BASE = (env.LEASEHOLD_URL ?? "http://leasehold:7733").replace(/\/+$/, "");
const CLI = env.LEASEHOLD_CLI ?? "/app/dist/cli/leasehold.mjs";
const ADMIN_TOKEN_FILE = env.LEASEHOLD_ADMIN_TOKEN_FILE ?? "/var/lib/leasehold/admin.token";
const TRUST_BUNDLE = env.LEASEHOLD_TRUST_BUNDLE ?? "/var/lib/leasehold/trust/agents.jwks.json";
const AUDIT_FILE = env.LEASEHOLD_AUDIT_FILE ?? "/var/lib/leasehold/audit.jsonl";
const AUDIENCE = env.LEASEHOLD_AUDIENCE ?? "leasehold";
const PG = {
  host: env.PGHOST ?? "postgres",
  port: Number(env.PGPORT ?? 5432),
  user: env.PGUSER ?? "postgres",
  password: env.PGPASSWORD ?? "",
};
const TARGET = { host: env.TARGET_PGHOST ?? PG.host, port: Number(env.TARGET_PGPORT ?? PG.port) };
const VAULT = {
  address: (env.VAULT_ADDR ?? "http://vault:8200").replace(/\/+$/, ""),
  token: env.VAULT_TOKEN ?? "",
  mount: env.VAULT_MOUNT ?? "secret",
  prefix: env.LEASEHOLD_VAULT_PREFIX ?? "leasehold",
};
const AGENT = "spiffe://example.org/agent/reporter";
const RESOURCE = "orders-db";
const ACCOUNT = "app_orders_1";

let step = 0;
/** @param {string} msg */
const say = (msg) => process.stdout.write(`${String(++step).padStart(2)}. ${msg}\n`);
const run = promisify(execFile);

/**
 * Runs the leasehold CLI (the same binary as the sidecar) and returns its stdout.
 * @param {string[]} args
 */
async function cli(...args) {
  const { stdout } = await run(process.execPath, [CLI, ...args], { env });
  return stdout.trim();
}

/**
 * A JSON call to the sidecar.
 * @param {string} method
 * @param {string} path
 * @param {{ token?: string, body?: unknown }} [opts]
 * @returns {Promise<{ status: number, body: any }>}
 */
async function call(method, path, opts = {}) {
  const res = await fetch(`${URL_BASE}${path}`, {
    method,
    headers: {
      // Over TCP the sidecar wants proof that a state-changing call is not a browser's (CSRF).
      "x-leasehold-request": "true",
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...(opts.body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {} };
}

/**
 * Whether PostgreSQL accepts this login.
 * @param {string} user
 * @param {string} password
 */
async function canLogin(user, password) {
  const c = new pg.Client({ ...PG, user, password, database: "postgres", connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    await c.end();
    return true;
  } catch (err) {
    const code = /** @type {{ code?: string }} */ (err).code;
    if (code === "28P01" || code === "28000") return false;
    throw err;
  }
}

/** @param {string} s */
const literal = (s) => `'${s.replaceAll("'", "''")}'`;

async function dbaCreatesRoles() {
  const adminPassword = randomBytes(18).toString("base64url");
  const dbaPassword = randomBytes(18).toString("base64url");
  const su = new pg.Client({ ...PG, database: "postgres" });
  await su.connect();
  try {
    const admin = await su.query("select 1 from pg_roles where rolname = 'leasehold_admin'");
    await su.query(
      `${admin.rowCount ? "ALTER" : "CREATE"} ROLE leasehold_admin LOGIN CREATEROLE PASSWORD ${literal(adminPassword)}`,
    );
    await su.query("CREATE TABLE IF NOT EXISTS orders (id int, total numeric)");
    await su.query("TRUNCATE orders; INSERT INTO orders VALUES (1, 120.50), (2, 80.25)");
    const exists = (await su.query(`select 1 from pg_roles where rolname = '${ACCOUNT}'`)).rowCount;
    if (!exists) {
      // Created by leasehold_admin, so that it may change the role's password (PostgreSQL 16
      // gives CREATEROLE rights only over roles one created or holds ADMIN OPTION on).
      const admin2 = new pg.Client({
        ...PG,
        user: "leasehold_admin",
        password: adminPassword,
        database: "postgres",
      });
      await admin2.connect();
      await admin2.query(`CREATE ROLE ${ACCOUNT} LOGIN PASSWORD ${literal(dbaPassword)}`);
      await admin2.end();
    }
    await su.query(`GRANT SELECT ON orders TO ${ACCOUNT}`);
  } finally {
    await su.end();
  }
  return { adminPassword, dbaPassword };
}

async function waitAvailable(adminToken) {
  for (let i = 0; i < 300; i++) {
    const r = await call("GET", `/v1/resources/${RESOURCE}`, { token: adminToken });
    const state = r.body.accounts?.[0]?.state;
    if (state === "available") return state;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error("the account did not come back to available within 30 s");
}

async function main() {
  process.stdout.write("leasehold demo agent: a PostgreSQL password that dies when the agent is done\n");
  const health = await call("GET", "/healthz");
  say(`sidecar at ${URL_BASE}: /healthz ${health.status}`);

  const { adminPassword, dbaPassword } = await dbaCreatesRoles();
  say(`DBA: roles leasehold_admin (CREATEROLE) and ${ACCOUNT} (the DBA knows its password), table orders`);

  const adminToken = (await readFile(ADMIN_TOKEN_FILE, "utf8")).trim();
  const reg = await call("PUT", `/v1/resources/${RESOURCE}`, {
    token: adminToken,
    body: {
      name: RESOURCE,
      adapter: "postgres",
      connection: { host: TARGET.host, port: TARGET.port, database: "postgres" },
      rotateWith: "admin",
      admin: { username: "leasehold_admin", password: adminPassword },
      accounts: [ACCOUNT],
      lease: { defaultTtl: 120, maxTtl: 600 },
    },
  });
  if (reg.status !== 201 && reg.status !== 200) throw new Error(`registration: ${JSON.stringify(reg.body)}`);
  await waitAvailable(adminToken);
  const dbaStill = await canLogin(ACCOUNT, dbaPassword);
  say(
    `DBA registered ${RESOURCE} (HTTP ${reg.status}); after the import rotation the DBA's password ${dbaStill ? "STILL WORKS" : "is refused"}`,
  );

  const keyDir = await mkdtemp(join(tmpdir(), "agent-"));
  await cli("agent", "keygen", "--id", AGENT, "--out", keyDir, "--bundle", TRUST_BUNDLE);
  const keyFile = join(keyDir, (await readdir(keyDir)).find((f) => f.endsWith(".key.jwk")) ?? "");
  say(`agent ${AGENT}: Ed25519 key, public key added to the sidecar's trust bundle`);
  const identity = await cli("agent", "assert", "--key", keyFile, "--aud", AUDIENCE, "--ttl", "60");
  say("agent minted a 60 s identity assertion (leasehold agent assert)");

  const co = await call("POST", "/v1/checkout", {
    token: identity,
    body: {
      resource: RESOURCE,
      task: { id: "TICKET-123", description: "monthly revenue report" },
      intent: { action: "read", tool: "psql" },
      ttl: 120,
    },
  });
  if (co.status !== 201) throw new Error(`checkout answered ${co.status}: ${JSON.stringify(co.body)}`);
  const lease = co.body.lease;
  const token = co.body.token;
  say(`checked out lease ${lease.id}: account ${lease.account}, expires ${lease.expires_at}`);

  const cred = await call("GET", `/v1/leases/${lease.id}/credential`, { token });
  if (cred.status !== 200) throw new Error(`reveal answered ${cred.status}: ${JSON.stringify(cred.body)}`);
  const password = cred.body.password;
  say(`revealed the password (${password.length} characters, not shown)`);
  const c = new pg.Client({ ...PG, user: cred.body.username, password, database: "postgres" });
  await c.connect();
  const q = await c.query("select count(*)::int as n, sum(total)::text as total from orders");
  await c.end();
  say(`connected as ${cred.body.username}: ${q.rows[0].n} orders, total ${q.rows[0].total}`);
  const tool = await call("POST", `/v1/leases/${lease.id}/tool-calls`, {
    token,
    body: { tool: "psql", action: "read", target: "orders" },
  });
  say(`recorded the tool call (HTTP ${tool.status})`);

  const del = await call("DELETE", `/v1/leases/${lease.id}`, { token });
  if (del.status !== 202) throw new Error(`check-in answered ${del.status}: ${JSON.stringify(del.body)}`);
  say(`checked in (HTTP ${del.status}); rotation follows`);
  say(`account state: ${await waitAvailable(adminToken)}`);
  const seen = await canLogin(ACCOUNT, password);
  say(`the password the agent saw: ${seen ? "STILL WORKS" : "refused"}`);
  const v = await fetch(
    `${VAULT.address}/v1/${VAULT.mount}/data/${VAULT.prefix}/resources/${RESOURCE}/accounts/${ACCOUNT}`,
    { headers: { "x-vault-token": VAULT.token } },
  );
  const record = (await v.json()).data.data;
  const fresh = await canLogin(ACCOUNT, record.password);
  say(`the new password in Vault: ${fresh ? "works" : "REFUSED"}`);
  const after = await call("GET", `/v1/leases/${lease.id}/credential`, { token });
  say(`the lease token after check-in: HTTP ${after.status} ${after.body.error?.code ?? ""}`.trim());
  const verify = await cli("audit", "verify", AUDIT_FILE);
  say(`audit trail: ${verify}`);
  if (dbaStill || seen || !fresh || after.status !== 401) throw new Error("the story did not hold");
  process.stdout.write("demo agent finished\n");
}

main().catch((err) => {
  process.stderr.write(`demo agent failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
