/**
 * `npm run demo`: the whole story on this machine, end to end, one line per step.
 * Local Redis; a private scram-sha-256 PostgreSQL cluster (the local server trusts every
 * password, so it could not show a refused one); the Vault dev server, or the real Vault
 * named by VAULT_ADDR + VAULT_TOKEN.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { stringify } from "yaml";
import { freePort } from "../test/support/free-port.js";
import { startScramPostgres } from "../test/support/pg-cluster.js";
import { dropPrefix } from "../test/support/redis.js";
import { runCli, startSidecarProcess } from "../test/support/sidecar-process.js";
import { useVault } from "../test/support/vault.js";

const AGENT = "spiffe://example.org/agent/reporter";
let step = 0;
const say = (msg: string) => process.stdout.write(`${String(++step).padStart(2)}. ${msg}\n`);
const indent = (msg: string) => process.stdout.write(`      ${msg}\n`);

async function tryLogin(port: number, user: string, password: string): Promise<string> {
  const c = new pg.Client({ host: "127.0.0.1", port, user, password, database: "postgres" });
  try {
    await c.connect();
    const r = await c.query("select current_user as u, now() as t");
    await c.end();
    return `ok (current_user=${r.rows[0].u})`;
  } catch (err) {
    return `refused (SQLSTATE ${(err as { code?: string }).code ?? "?"})`;
  }
}

async function main(): Promise<void> {
  process.stdout.write("leasehold demo: an agent borrows a PostgreSQL password that dies when it is done\n");
  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    const dir = await mkdtemp(join(tmpdir(), "leasehold-demo-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const vault = await useVault();
    cleanups.push(() => vault.close());
    say(
      vault.dev
        ? `Vault dev server on ${vault.address} (KV v2 at ${vault.mount}/)`
        : `using the real Vault at ${vault.address}`,
    );
    const pgc = await startScramPostgres();
    cleanups.push(() => pgc.stop());
    say(`private PostgreSQL cluster with scram-sha-256 auth on 127.0.0.1:${pgc.port}`);

    const adminPassword = randomBytes(18).toString("base64url");
    const dbaPassword = randomBytes(18).toString("base64url");
    const su = new pg.Client({
      host: "127.0.0.1",
      port: pgc.port,
      user: "postgres",
      password: pgc.superuser.password,
      database: "postgres",
    });
    await su.connect();
    await su.query(`CREATE ROLE leasehold_admin LOGIN CREATEROLE PASSWORD '${adminPassword}'`);
    await su.query(`CREATE ROLE app_orders_1 LOGIN PASSWORD '${dbaPassword}'`);
    await su.query(
      "CREATE TABLE orders (id int, total numeric); INSERT INTO orders VALUES (1, 120.50), (2, 80.25)",
    );
    await su.query("GRANT SELECT ON orders TO app_orders_1");
    await su.end();
    say(
      "created roles leasehold_admin (CREATEROLE) and app_orders_1 (the DBA knows its password), and a table",
    );

    const port = await freePort();
    const prefix = `leasehold-demo:${randomBytes(3).toString("hex")}:`;
    cleanups.push(() => dropPrefix(prefix));
    const config = {
      listen: { host: "127.0.0.1", port },
      redis: { url: "redis://127.0.0.1:6379/0", prefix },
      vault: {
        address: vault.address,
        auth: { method: "token", token: "${DEMO_VAULT_TOKEN}" },
        mount: vault.mount,
        prefix: `leasehold-demo-${randomBytes(3).toString("hex")}`,
      },
      identity: {
        audience: "leasehold",
        trust: [
          { kind: "agents", jwks: "./trust/agents.jwks.json", subjects: ["spiffe://example.org/agent/*"] },
        ],
      },
      policy: { file: "./policy.cedar" },
      log: { level: "warn" },
    };
    const configFile = join(dir, "leasehold.yaml");
    await writeFile(configFile, stringify(config));
    await writeFile(
      join(dir, "policy.cedar"),
      `@id("reporters-read-orders")\npermit (principal, action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"], resource == Resource::"orders-db")\nwhen { context.intent == "read" && context.ttl <= 600 };\n`,
    );
    const env = { DEMO_VAULT_TOKEN: vault.token };
    const cli = (...args: string[]) => runCli(["--config", configFile, ...args], env);
    const must = async (...args: string[]) => {
      const r = await cli(...args);
      if (r.code !== 0) throw new Error(`leasehold ${args.join(" ")} failed: ${r.stderr.trim()}`);
      return r.stdout.trim();
    };
    await must("agent", "keygen", "--id", AGENT, "--out", join(dir, "trust"));
    say(`agent identity ${AGENT}: Ed25519 key, public key in trust/agents.jwks.json`);

    const sidecar = await startSidecarProcess({ configFile, port, env });
    cleanups.push(() => sidecar.stop());
    say(`sidecar listening on ${sidecar.url}`);

    const reg = {
      name: "orders-db",
      adapter: "postgres",
      connection: { host: "127.0.0.1", port: pgc.port, database: "postgres" },
      rotateWith: "admin",
      admin: { username: "leasehold_admin", password: adminPassword },
      accounts: ["app_orders_1"],
      lease: { defaultTtl: 120, maxTtl: 600 },
    };
    await writeFile(join(dir, "orders-db.yaml"), stringify(reg));
    await must("resources", "register", "-f", join(dir, "orders-db.yaml"));
    say(
      `registered orders-db; import rotation done: the DBA's password now ${await tryLogin(pgc.port, "app_orders_1", dbaPassword)}`,
    );

    const { readdir } = await import("node:fs/promises");
    const key = (await readdir(join(dir, "trust"))).find((f) => f.endsWith(".key.jwk"));
    if (!key) throw new Error("agent key file missing");
    const identity = await must("agent", "assert", "--key", join(dir, "trust", key));
    say("agent minted a 60 s identity assertion (leasehold agent assert)");

    const co = await fetch(`${sidecar.url}/v1/checkout`, {
      method: "POST",
      headers: { authorization: `Bearer ${identity}`, "content-type": "application/json" },
      body: JSON.stringify({
        resource: "orders-db",
        task: { id: "TICKET-123", description: "monthly revenue report" },
        intent: { action: "read", tool: "psql" },
        ttl: 120,
      }),
    });
    const body = (await co.json()) as {
      lease: { id: string; account: string; expires_at: string };
      token: string;
    };
    if (co.status !== 201) throw new Error(`checkout answered ${co.status}: ${JSON.stringify(body)}`);
    say(
      `checked out lease ${body.lease.id}: account ${body.lease.account}, expires ${body.lease.expires_at}`,
    );

    const cr = await fetch(`${sidecar.url}/v1/leases/${body.lease.id}/credential`, {
      headers: { authorization: `Bearer ${body.token}` },
    });
    const cred = (await cr.json()) as { username: string; password: string };
    say(`revealed the password (${cred.password.length} characters, not shown)`);
    const c = new pg.Client({
      host: "127.0.0.1",
      port: pgc.port,
      user: cred.username,
      password: cred.password,
      database: "postgres",
    });
    await c.connect();
    const r = await c.query("select count(*)::int as n, sum(total)::text as total from orders");
    await c.end();
    say(`connected as ${cred.username} and ran a query: ${r.rows[0].n} orders, total ${r.rows[0].total}`);

    await fetch(`${sidecar.url}/v1/leases/${body.lease.id}/tool-calls`, {
      method: "POST",
      headers: { authorization: `Bearer ${body.token}`, "content-type": "application/json" },
      body: JSON.stringify({ tool: "psql", action: "read", target: "orders" }),
    });
    const del = await fetch(`${sidecar.url}/v1/leases/${body.lease.id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${body.token}`, "x-leasehold-request": "true" },
    });
    say(`checked in (HTTP ${del.status}); rotation follows`);

    let state = "";
    for (let i = 0; i < 100 && state !== "available"; i++) {
      await new Promise((res) => setTimeout(res, 100));
      const show = JSON.parse(await must("--json", "resources", "show", "orders-db")) as {
        accounts: Array<{ state: string }>;
      };
      state = show.accounts[0]?.state ?? "";
    }
    say(`account state after check-in: ${state}`);
    say(`the password the agent saw: ${await tryLogin(pgc.port, cred.username, cred.password)}`);
    const vaultPrefix = config.vault.prefix;
    const vr = await fetch(
      `${vault.address}/v1/${vault.mount}/data/${vaultPrefix}/resources/orders-db/accounts/app_orders_1`,
      {
        headers: { "X-Vault-Token": vault.token },
      },
    );
    const rec = ((await vr.json()) as { data: { data: { password: string } } }).data.data;
    say(`the new password in Vault: ${await tryLogin(pgc.port, cred.username, rec.password)}`);
    const tokenUse = await fetch(`${sidecar.url}/v1/leases/${body.lease.id}/credential`, {
      headers: { authorization: `Bearer ${body.token}` },
    });
    say(`the agent's lease token after check-in: HTTP ${tokenUse.status}`);

    const verify = await must("audit", "verify", join(dir, "state", "audit.jsonl"));
    say(`audit trail: ${verify}`);
    const lines = (await readFile(join(dir, "state", "audit.jsonl"), "utf8")).trim().split("\n");
    for (const line of lines) {
      const a = JSON.parse(line) as Record<string, unknown>;
      const fields = [
        "agent",
        "task_id",
        "intent",
        "tool",
        "resource",
        "account",
        "lease_id",
        "decision",
        "policies",
        "reason",
      ]
        .filter((k) => a[k] !== undefined)
        .map((k) => `${k}=${Array.isArray(a[k]) ? (a[k] as string[]).join(",") : String(a[k])}`);
      indent(`${String(a.event).padEnd(18)} ${fields.join(" ")}`);
    }
    await cleanup();
    process.stdout.write("demo finished: every process it started is stopped\n");
  } catch (err) {
    process.stderr.write(`demo failed: ${(err as Error).message}\n`);
    await cleanup();
    process.exitCode = 1;
  }
}

void main();
