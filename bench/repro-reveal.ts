/**
 * Repro attempt for the V8 fatal error ("unreachable code" in the Deoptimizer) seen once in
 * bench/checkout.ts's 1,000-reveal phase: the same in-process sidecar, Redis, Vault dev server and
 * private PostgreSQL cluster; a short checkout phase as that bench runs first, then `rounds` rounds
 * of 1,000 reveals timed by bench/stats.ts's timeSequential (process.hrtime.bigint() around each
 * awaited fetch). `node --import tsx bench/repro-reveal.ts [rounds]`; prints the reveals done.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { pino } from "pino";
import { parseConfig } from "../sidecar/config.js";
import { generateAgentKey, mintIdentityAssertion } from "../sidecar/identity/index.js";
import { createLogger } from "../sidecar/logger.js";
import { createSidecar } from "../sidecar/wire.js";
import { freePort } from "../test/support/free-port.js";
import { startScramPostgres } from "../test/support/pg-cluster.js";
import { dropPrefix } from "../test/support/redis.js";
import { startVaultDev } from "../test/vault-dev/server.js";
import { performance } from "node:perf_hooks";
import { summarize, timeSequential } from "./stats.js";

const rounds = Number(process.argv[2] ?? 5);
/** How each reveal is timed: `hrtime` (timeSequential), `now` (performance.now()), `none`. */
const timer = process.argv[3] ?? "hrtime";
const AGENT = "spiffe://example.org/agent/bench";
const POLICY = `@id("bench")\npermit (principal, action, resource) when { context.intent == "read" };\n`;

async function main(): Promise<void> {
  // `v8flags`: the flags the CLI sets for itself (sidecar/cli/v8-flags.ts), set the same way.
  if (process.argv[4] === "v8flags") await import("../sidecar/cli/v8-flags.js");
  const dir = await mkdtemp(join(tmpdir(), "lh-repro-"));
  const vault = await startVaultDev({ rootToken: "bench-root" });
  const pgc = await startScramPostgres();
  const prefix = `lhbench:${randomBytes(3).toString("hex")}:`;
  const log = createLogger("silent", pino.destination({ dest: "/dev/null", sync: false }));
  try {
    const su = new pg.Client({
      host: "127.0.0.1",
      port: pgc.port,
      user: "postgres",
      password: pgc.superuser.password,
      database: "postgres",
    });
    await su.connect();
    const adminPw = randomBytes(12).toString("hex");
    await su.query(`CREATE ROLE bench_admin LOGIN CREATEROLE PASSWORD '${adminPw}'`);
    const accounts: Array<{ name: string; password: string }> = [];
    for (let i = 0; i < 8; i++) {
      const a = { name: `bench_${i}`, password: randomBytes(12).toString("hex") };
      await su.query(`CREATE ROLE ${a.name} LOGIN PASSWORD '${a.password}'`);
      accounts.push(a);
    }
    await su.end();
    const key = await generateAgentKey({ id: AGENT, outDir: join(dir, "trust") });
    await writeFile(join(dir, "policy.cedar"), POLICY);
    const config = parseConfig(
      {
        listen: { port: await freePort() },
        redis: { url: "redis://127.0.0.1:6379/0", prefix },
        vault: {
          address: vault.address,
          auth: { method: "token", token: vault.rootToken },
          prefix: `bench-${randomBytes(3).toString("hex")}`,
        },
        identity: {
          trust: [
            { kind: "agents", jwks: "./trust/agents.jwks.json", subjects: ["spiffe://example.org/agent/*"] },
          ],
        },
        log: { level: "silent" },
        limits: { checkoutsPerMinute: 1_000_000 },
      },
      dir,
    );
    const sidecar = await createSidecar({ config, log, background: true });
    await sidecar.app.listen({ host: "127.0.0.1", port: config.listen.port });
    const base = `http://127.0.0.1:${config.listen.port}`;
    await sidecar.resourceService.register(
      {
        name: "bench-db",
        adapter: "postgres",
        connection: { host: "127.0.0.1", port: pgc.port, database: "postgres" },
        admin: { username: "bench_admin", password: adminPw },
        accounts,
        importRotation: false,
      },
      { dryRun: false, actor: "bench" },
    );
    const checkout = async () => {
      const r = await fetch(`${base}/v1/checkout`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${await mintIdentityAssertion({ keyFile: key.keyFile, audience: "leasehold" })}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          resource: "bench-db",
          task: { id: "B-1" },
          intent: { action: "read", tool: "psql" },
          ttl: 300,
          wait: 30,
        }),
      });
      const j = (await r.json()) as { lease: { id: string }; token: string };
      if (r.status !== 201) throw new Error(`checkout ${r.status}`);
      return j;
    };
    // A checkout phase first, as bench/checkout.ts runs one before its reveals (check-in rotates).
    for (let i = 0; i < 40; i++) {
      const h = await checkout();
      await fetch(`${base}/v1/leases/${h.lease.id}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${h.token}`, "x-leasehold-request": "true" },
      });
    }
    const held = await checkout();
    const useReveal = () =>
      fetch(`${base}/v1/leases/${held.lease.id}/credential`, {
        headers: { authorization: `Bearer ${held.token}` },
      }).then((r) => r.arrayBuffer());
    let n = 0;
    for (let r = 0; r < rounds; r++) {
      const lat =
        timer === "hrtime"
          ? await timeSequential(1000, 20, useReveal)
          : await (async () => {
              const out: number[] = [];
              for (let i = 0; i < 1020; i++) {
                const t = timer === "now" ? performance.now() : 0;
                await useReveal();
                if (i >= 20 && timer === "now") out.push(performance.now() - t);
              }
              return summarize(out.length ? out : [0]);
            })();
      n += 1020;
      process.stdout.write(`round ${r + 1}: reveal p50 ${lat.p50.toFixed(3)} ms\n`);
    }
    process.stdout.write(`reveals: ${n}\n`);
    await sidecar.close();
  } finally {
    await dropPrefix(prefix);
    await pgc.stop();
    await vault.close();
    await rm(dir, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  process.stderr.write(`repro failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
