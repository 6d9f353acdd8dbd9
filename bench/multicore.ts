/**
 * Multi-core: sidecar processes share nothing but Redis and Vault, so a second `leasehold serve`
 * process (same Redis prefix, same Vault prefix, its own port) should add throughput on a machine
 * with a spare core. Drives checkout + checkin (DELETE /v1/leases/{id}, the checkin sent to the
 * other process when there are two) at c=32 against 1, then 2 processes of the built CLI, and
 * reports both rates and their ratio (goal ≥ 1.6×), with the CPU each process used (from
 * /proc/<pid>/stat) and the load generator's own share: on a 2-core machine the client competes
 * with the sidecars, so its CPU is printed beside the figures.
 *
 * The load generator is lean: node:http with keep-alive, identity JWTs minted before each timed
 * run (one per checkout: they are one-time). A private redis-server, the Vault dev server in a
 * process of its own, a private PostgreSQL cluster (rotations after checkin): the CPU of each is
 * printed per run, in cores and in ms per checkout+checkin.
 *
 * `npx tsx bench/multicore.ts [--quick] [--profile] [--sessions]` (`npm run build` first).
 * `--profile`: the sidecars run under `--cpu-prof` and their 2-process run is summarized;
 * `--sessions`: each sidecar in a session of its own (see OWN_SESSIONS).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { Agent, request } from "node:http";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { stringify } from "yaml";
import { generateAgentKey, mintIdentityAssertion } from "../sidecar/identity/index.js";
import { freePort } from "../test/support/free-port.js";
import { startScramPostgres } from "../test/support/pg-cluster.js";
import { startPrivateRedis } from "./private-redis.js";
import { cpuMs, postgresCpuMs, redisCpuMs, runQueueMs, startVaultDevProcess } from "./process-cpu.js";
import { type CpuProfile, printTable, quick, type Row, summarizeProfile, writeResults } from "./stats.js";

const CLI = resolve("dist/cli/leasehold.mjs"); // the bin (scripts/bundle.mjs)
const CONCURRENCY = 32;
const DURATION = quick ? 4000 : 15_000;
const ACCOUNTS = quick ? 300 : 1000;
const AGENT = "spiffe://example.org/agent/bench";
const POLICY = `@id("bench")\npermit (principal, action, resource) when { context.intent == "read" };\n`;
/** `--profile`: each sidecar process runs under `--cpu-prof`; the 2-process run's window is summarized. */
const PROFILE = process.argv.includes("--profile");
const PROFILE_DIR = resolve("bench/results/multicore-profiles");
/**
 * `--sessions`: each sidecar in a session of its own (setsid). Linux's autogroup scheduler
 * (`/proc/sys/kernel/sched_autogroup_enabled`) shares a busy machine's cores per session, not per
 * process: in one session, a second sidecar only splits the first one's share.
 */
const OWN_SESSIONS = process.argv.includes("--sessions");

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function call(
  port: number,
  method: string,
  path: string,
  token: string,
  body?: string,
): Promise<{ status: number; json: unknown }> {
  return new Promise((done, fail) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method,
        path,
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          done({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : null });
        });
      },
    );
    req.on("error", fail);
    req.end(body);
  });
}

interface Serve {
  readonly port: number;
  readonly child: ChildProcess;
}

async function startServe(configFile: string, port: number, env: NodeJS.ProcessEnv): Promise<Serve> {
  const prof = PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${PROFILE_DIR}`, "--cpu-prof-interval=500"] : [];
  const child = spawn(process.execPath, [...prof, CLI, "serve", "--config", configFile], {
    env,
    detached: OWN_SESSIONS,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  for (;;) {
    if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}: ${err.slice(-400)}`);
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.arrayBuffer().then(() => r.ok),
      () => false,
    );
    if (ok) return { port, child };
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function stopServe(s: Serve): Promise<void> {
  if (s.child.exitCode !== null) return;
  const gone = new Promise((r) => s.child.once("exit", r));
  s.child.kill("SIGTERM");
  await gone;
}

interface RunCpu {
  readonly rate: number;
  readonly seconds: number;
  readonly sidecarCpu: number[];
  readonly sidecarRunQueue: number[];
  readonly generatorCpu: number;
  readonly vaultCpu: number;
  readonly postgresCpu: number;
  readonly redisCpu: number;
}

/** Each process's CPU in cores during a run, their sum, and the CPU per checkout+checkin. */
function cpuBreakdown(r: RunCpu): string {
  const parts: Array<[string, number]> = [
    ...r.sidecarCpu.map((c, i) => [`sidecar ${i + 1}`, c] as [string, number]),
    ["load generator", r.generatorCpu],
    ["Vault dev server", r.vaultCpu],
    ["PostgreSQL (rotations)", r.postgresCpu],
    ["Redis", r.redisCpu],
  ];
  const total = parts.reduce((a, [, c]) => a + c, 0);
  const perCycle = (c: number) => ((c * 1000) / Math.max(r.rate, 1e-9)).toFixed(2);
  return [
    `  CPU in cores (ms per checkout+checkin): ${parts.map(([n, c]) => `${n} ${c.toFixed(2)} (${perCycle(c)})`).join(", ")}`,
    `  all of them: ${total.toFixed(2)} cores of 2 (${perCycle(total)} ms per checkout+checkin)`,
    `  sidecars ready to run but waiting for a core (run queue), in cores: ${r.sidecarRunQueue.map((c) => c.toFixed(2)).join(" + ")}`,
  ].join("\n");
}

/** The sidecars' CPU profiles (`--profile`), cut to `window` (µs, monotonic), summarized together. */
async function profileSummary(window: readonly [number, number]): Promise<string> {
  const files = readdirSync(PROFILE_DIR).filter((f) => f.endsWith(".cpuprofile"));
  const out: string[] = [];
  for (const f of files) {
    const p = JSON.parse(await readFile(join(PROFILE_DIR, f), "utf8")) as CpuProfile & { startTime: number };
    const samples: number[] = [];
    const timeDeltas: number[] = [];
    let t = p.startTime;
    p.samples.forEach((id, i) => {
      t += p.timeDeltas[i] ?? 0;
      if (t >= window[0] && t <= window[1]) {
        samples.push(id);
        timeDeltas.push(p.timeDeltas[i] ?? 0);
      }
    });
    out.push(`\n== ${f} (the 2-process run only)\n${summarizeProfile({ ...p, samples, timeDeltas }, 20)}`);
  }
  return out.join("");
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "lh-bench-mc-"));
  // Vault dev server and Redis as processes of their own, so each one's CPU can be told apart.
  const vault = await startVaultDevProcess(await freePort(), `bench-${randomBytes(6).toString("hex")}`);
  const privateRedis = await startPrivateRedis();
  const redisInfo = new Redis(privateRedis.url);
  if (PROFILE) await mkdir(PROFILE_DIR, { recursive: true });
  const pgc = await startScramPostgres();
  const prefix = `lhbench:mc:${randomBytes(3).toString("hex")}:`;
  const running: Serve[] = [];
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
    await su.query(`CREATE ROLE mc_admin LOGIN CREATEROLE PASSWORD '${adminPw}'`);
    const accounts: Array<{ name: string; password: string }> = [];
    for (let i = 0; i < ACCOUNTS; i++) {
      const a = { name: `mc_${i}`, password: randomBytes(12).toString("hex") };
      await su.query(`CREATE ROLE ${a.name} LOGIN PASSWORD '${a.password}'`);
      accounts.push(a);
    }
    await su.end();
    const key = await generateAgentKey({ id: AGENT, outDir: join(dir, "trust") });
    await writeFile(join(dir, "policy.cedar"), POLICY);
    const ports = [await freePort(), await freePort()];
    const configFor = async (port: number) => {
      const file = join(dir, `leasehold-${port}.yaml`);
      await writeFile(
        file,
        stringify({
          listen: { host: "127.0.0.1", port },
          redis: { url: privateRedis.url, prefix },
          vault: {
            address: vault.address,
            auth: { method: "token", token: "${LH_BENCH_VAULT_TOKEN}" },
            prefix: `bench-mc-${prefix.split(":")[2]}`,
          },
          identity: {
            trust: [
              {
                kind: "agents",
                jwks: "./trust/agents.jwks.json",
                subjects: ["spiffe://example.org/agent/*"],
              },
            ],
          },
          policy: { file: "./policy.cedar" },
          // One signing key, one admin token, one audit file per process (the same files for both would race).
          tokens: { signingKey: `./state-${port}/signing.jwk` },
          admin: { tokenFile: "./state/admin.token" },
          audit: { file: `./state-${port}/audit.jsonl` },
          limits: { checkoutsPerMinute: 1_000_000 },
          log: { level: "warn" },
        }),
      );
      return file;
    };
    const configs = [await configFor(ports[0] as number), await configFor(ports[1] as number)];
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LH_BENCH_VAULT_TOKEN: vault.rootToken,
    };
    const first = await startServe(configs[0] as string, ports[0] as number, env);
    running.push(first);
    const admin = (await readFile(join(dir, "state", "admin.token"), "utf8")).trim();
    const reg = await call(
      first.port,
      "PUT",
      "/v1/resources/mc-db",
      admin,
      JSON.stringify({
        name: "mc-db",
        adapter: "postgres",
        connection: { host: "127.0.0.1", port: pgc.port, database: "postgres" },
        admin: { username: "mc_admin", password: adminPw },
        accounts,
        importRotation: false,
      }),
    );
    if (reg.status >= 300) throw new Error(`register: ${reg.status} ${JSON.stringify(reg.json)}`);

    const body = JSON.stringify({
      resource: "mc-db",
      task: { id: "MC-1" },
      intent: { action: "read" },
      ttl: 300,
    });
    const mint = () =>
      mintIdentityAssertion({ keyFile: key.keyFile, audience: "leasehold", ttlSeconds: 300 });

    /** One timed run at c=32 against `targets`: checkout on one, checkin on the next. */
    const run = async (targets: readonly Serve[]) => {
      // Minted before the clock starts (the agent's work, not the sidecar's); more than a run spends.
      const pool = await Promise.all(Array.from({ length: quick ? 6000 : 20_000 }, mint));
      const before = targets.map((t) => cpuMs(t.child.pid as number));
      const waited = targets.map((t) => runQueueMs(t.child.pid as number));
      const others0 = {
        vault: cpuMs(vault.pid),
        pg: postgresCpuMs(pgc.dataDir),
        redis: await redisCpuMs(redisInfo),
      };
      const self = process.cpuUsage();
      let done = 0;
      let refused = 0;
      let next = 0;
      const end = Date.now() + DURATION;
      const t0 = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (Date.now() < end) {
            const i = next++;
            const a = targets[i % targets.length] as Serve;
            const b = targets[(i + 1) % targets.length] as Serve;
            const identity = pool.pop() ?? (await mint());
            const out = await call(a.port, "POST", "/v1/checkout", identity, body);
            if (out.status !== 201) {
              // The pool empties while rotations after checkin catch up: counted, not timed out.
              refused++;
              await new Promise((r) => setTimeout(r, 5));
              continue;
            }
            const { lease, token } = out.json as { lease: { id: string }; token: string };
            const back = await call(b.port, "DELETE", `/v1/leases/${lease.id}`, token);
            if (back.status !== 202) throw new Error(`checkin ${back.status} ${JSON.stringify(back.json)}`);
            done++;
          }
        }),
      );
      const t1 = process.hrtime.bigint();
      const secs = Number(t1 - t0) / 1e9;
      const used = process.cpuUsage(self);
      const cores = (ms: number) => ms / 1000 / secs;
      return {
        /** The run's start and end, µs of the monotonic clock (the CPU profiles' clock). */
        window: [Number(t0 / 1000n), Number(t1 / 1000n)] as const,
        vaultCpu: cores(cpuMs(vault.pid) - others0.vault),
        postgresCpu: cores(postgresCpuMs(pgc.dataDir) - others0.pg),
        redisCpu: cores((await redisCpuMs(redisInfo)) - others0.redis),
        rate: done / secs,
        refused,
        seconds: secs,
        sidecarCpu: targets.map(
          (t, k) => (cpuMs(t.child.pid as number) - (before[k] as number)) / 1000 / secs,
        ),
        generatorCpu: (used.user + used.system) / 1e6 / secs,
        /** Per sidecar: the time its threads were ready to run but had no core, in cores. */
        sidecarRunQueue: targets.map(
          (t, k) => (runQueueMs(t.child.pid as number) - (waited[k] as number)) / 1000 / secs,
        ),
      };
    };
    await run([first]); // warm-up: JIT, connection pools, the pool's first rotations
    const one = await run([first]);
    const second = await startServe(configs[1] as string, ports[1] as number, env);
    running.push(second);
    await run([first, second]); // warm-up of the second process
    const two = await run([first, second]);
    const rows: Row[] = [
      {
        figure: "checkout+checkin /s, 2 processes vs 1 (c=32)",
        product: two.rate,
        floor: one.rate,
        unit: "/s",
        better: "higher",
        goal: "≥ 1.6×",
      },
    ];
    printTable(`multi-core: ${quick ? "quick" : "full"}, ${DURATION / 1000}s runs, c=${CONCURRENCY}`, rows);
    for (const [name, r] of [
      ["1 process ", one],
      ["2 processes", two],
    ] as const) {
      process.stdout.write(
        `${name}: ${r.rate.toFixed(0)}/s (${r.refused} checkouts refused while the pool refilled)\n`,
      );
      process.stdout.write(`${cpuBreakdown(r)}\n`);
    }
    process.stdout.write(
      `load average (1, 5, 15 min) at the end: ${loadavg()
        .map((x) => x.toFixed(1))
        .join(", ")}\n`,
    );
    const file = writeResults(quick ? "multicore-quick" : "multicore", {
      concurrency: CONCURRENCY,
      durationMs: DURATION,
      one,
      two,
      ratio: two.rate / one.rate,
      loadavg: loadavg(),
      ownSessions: OWN_SESSIONS,
    });
    process.stdout.write(`results: ${file}\n`);
    for (const s of running.splice(0)) await stopServe(s);
    if (PROFILE) process.stdout.write(await profileSummary(two.window));
  } finally {
    for (const s of running) await stopServe(s);
    agent.destroy();
    redisInfo.disconnect();
    await privateRedis.stop();
    await pgc.stop();
    await vault.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
