/**
 * `leasehold serve` start time: from spawning the built CLI (`serve --config …`, against the
 * local Redis and the Vault dev server) until `/readyz` answers 200, against `node -e 0` (the
 * floor: starting Node itself). Each round starts the floor and then the sidecar, so load on the
 * machine hits both alike; the figure is the median of the rounds. Goal: under 1 s.
 *
 * Where the time goes, from one more run of the sidecar under the V8 CPU profiler
 * (`node --cpu-prof`): module loading (compile + evaluate, by package), and the start's own
 * work by area. `--profile` keeps the `.cpuprofile` in bench/results (open it in DevTools).
 *
 * `npx tsx bench/serve-start.ts [--quick] [--profile]` (`npm run build` first)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { generateAgentKey } from "../sidecar/identity/index.js";
import { freePort } from "../test/support/free-port.js";
import { dropPrefix } from "../test/support/redis.js";
import { startVaultDev } from "../test/vault-dev/server.js";
import { percentile, printTable, quick, type Row, summarizeProfile, writeResults } from "./stats.js";

const RUNS = quick ? 5 : 15;
const CLI = resolve("dist/cli/leasehold.mjs"); // the bin (scripts/bundle.mjs)
const POLICY = `@id("bench")\npermit (principal, action, resource) when { context.intent == "read" };\n`;

const median = (xs: readonly number[]): number =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((r) => {
    if (child.exitCode !== null) r(child.exitCode);
    else child.once("exit", (code) => r(code));
  });
}

/** Wall time of `node -e 0`, ms. */
async function floorRun(): Promise<number> {
  const t = process.hrtime.bigint();
  const child = spawn(process.execPath, ["-e", "0"], { stdio: "ignore" });
  await exited(child);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/**
 * Spawns `leasehold serve`, polls `/readyz` until 200 (a refused connection or a 503 is tried
 * again 5 ms later), stops it with SIGTERM; the wall time from spawn to the first 200, ms.
 */
async function serveRun(
  configFile: string,
  port: number,
  env: NodeJS.ProcessEnv,
  nodeArgs: readonly string[] = [],
): Promise<number> {
  const t = process.hrtime.bigint();
  const child = spawn(process.execPath, [...nodeArgs, CLI, "serve", "--config", configFile], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const gone = exited(child);
  let ms = 0;
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}: ${err.slice(-400)}`);
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.arrayBuffer().then(() => r.status === 200),
        () => false,
      );
      if (ok) {
        ms = Number(process.hrtime.bigint() - t) / 1e6;
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
      if (Number(process.hrtime.bigint() - t) / 1e6 > 60_000) throw new Error("serve not ready in 60 s");
    }
  } finally {
    child.kill("SIGTERM");
    await gone;
  }
  return ms;
}

/** Time spent compiling and evaluating modules, by package, from a profile's stacks. */
interface ProfileNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string; lineNumber: number };
  readonly children?: number[];
}
interface CpuProfile {
  readonly nodes: ProfileNode[];
  readonly samples: number[];
  readonly timeDeltas: number[];
}

function owner(url: string): string | undefined {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return `npm:${pkg[1]}`;
  const own = /\/dist\/(sidecar|adapters)\/([^/]+)/.exec(url);
  if (own) return `${own[1]}/${own[2]?.replace(/\.js$/, "")}`;
  return undefined;
}

/**
 * Splits the profiled start in two: module loading (a sample whose stack holds a module's
 * top-level code, or the loader itself) charged to the outermost package or project folder being
 * loaded, and everything else (the start's own work, idle while it waits for I/O, GC).
 */
function startBreakdown(p: CpuProfile): { total: number; rows: Array<[string, number]> } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const sums = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const us = p.timeDeltas[i] ?? 0;
    total += us;
    // Walk from the root down: the first module's top-level code (an anonymous function at a
    // file's top, as V8 names a module body) names what was being loaded.
    const stack: ProfileNode[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      if (n) stack.unshift(n);
    }
    const leaf = stack[stack.length - 1]?.callFrame;
    let key: string | undefined;
    const loading = stack.some(
      (n) =>
        n.callFrame.url.startsWith("node:internal/modules/esm") ||
        n.callFrame.url.startsWith("node:internal/modules/cjs"),
    );
    if (loading) {
      const body = stack.find((n) => n.callFrame.functionName === "" && owner(n.callFrame.url) !== undefined);
      key = `load ${body ? owner(body.callFrame.url) : "(loader: resolve, read, compile)"}`;
    } else if (leaf?.functionName === "(idle)") key = "idle (waiting for I/O)";
    else if (leaf?.functionName === "(garbage collector)") key = "gc";
    else if (leaf?.functionName === "(program)") key = "program (native)";
    else {
      const at = [...stack].reverse().find((n) => owner(n.callFrame.url) !== undefined);
      key = `run ${at ? owner(at.callFrame.url) : "(node internals)"}`;
    }
    sums.set(key, (sums.get(key) ?? 0) + us);
  });
  return { total: total / 1000, rows: [...sums].map(([k, us]) => [k, us / 1000] as [string, number]) };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "lh-bench-serve-"));
  const vault = await startVaultDev({ rootToken: `bench-${randomBytes(6).toString("hex")}` });
  const prefix = `lhbench:start:${randomBytes(3).toString("hex")}:`;
  try {
    await generateAgentKey({ id: "spiffe://example.org/agent/bench", outDir: join(dir, "trust") });
    await writeFile(join(dir, "policy.cedar"), POLICY);
    const port = await freePort();
    const configFile = join(dir, "leasehold.yaml");
    await writeFile(
      configFile,
      stringify({
        listen: { host: "127.0.0.1", port },
        redis: { url: "redis://127.0.0.1:6379/0", prefix },
        vault: {
          address: vault.address,
          auth: { method: "token", token: "${LH_BENCH_VAULT_TOKEN}" },
          prefix: `bench-start-${randomBytes(3).toString("hex")}`,
        },
        identity: {
          trust: [
            { kind: "agents", jwks: "./trust/agents.jwks.json", subjects: ["spiffe://example.org/agent/*"] },
          ],
        },
        policy: { file: "./policy.cedar" },
        log: { level: "warn" },
      }),
    );
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LH_BENCH_VAULT_TOKEN: vault.rootToken,
    };
    // The first start creates the state (signing key, admin token, Vault's cluster records) and
    // warms the file cache; it is not counted.
    await serveRun(configFile, port, env);
    const floor: number[] = [];
    const serve: number[] = [];
    for (let round = 0; round < RUNS; round++) {
      floor.push(await floorRun());
      serve.push(await serveRun(configFile, port, env));
    }
    const rows: Row[] = [
      {
        figure: "leasehold serve: spawn to /readyz 200",
        product: median(serve),
        floor: median(floor),
        unit: "ms (median)",
        better: "lower",
        goal: "< 1000 ms",
      },
    ];
    printTable(`serve start, median of ${RUNS} rounds (floor: node -e 0)`, rows);
    process.stdout.write(
      `serve samples (ms): ${serve.map((x) => x.toFixed(0)).join(" ")}\nfloor samples (ms): ${floor.map((x) => x.toFixed(0)).join(" ")}\n`,
    );

    // Where the time goes: one more start under the CPU profiler.
    const profDir = join(dir, "prof");
    await mkdir(profDir);
    const profiledMs = await serveRun(configFile, port, env, ["--cpu-prof", "--cpu-prof-dir", profDir]);
    const [file] = (await readdir(profDir)).filter((f) => f.endsWith(".cpuprofile"));
    let breakdown: Array<[string, number]> = [];
    if (file) {
      const profile = JSON.parse(await readFile(join(profDir, file), "utf8")) as CpuProfile;
      const b = startBreakdown(profile);
      breakdown = b.rows.sort((x, y) => y[1] - x[1]);
      const loading = breakdown.filter(([k]) => k.startsWith("load ")).reduce((a, [, ms]) => a + ms, 0);
      process.stdout.write(
        `\none start under --cpu-prof: ${profiledMs.toFixed(0)} ms to ready (the profiler slows it); ` +
          `${b.total.toFixed(0)} ms sampled until SIGTERM, ${loading.toFixed(0)} ms of it loading modules\n`,
      );
      for (const [k, ms] of breakdown.slice(0, 25))
        process.stdout.write(`${ms.toFixed(0).padStart(7)} ms  ${k}\n`);
      if (process.argv.includes("--profile")) {
        const kept = resolve("bench/results/serve-start.cpuprofile");
        await mkdir(resolve("bench/results"), { recursive: true });
        await copyFile(join(profDir, file), kept);
        process.stdout.write(`\n${summarizeProfile(profile, 20)}\nprofile: ${kept}\n`);
      }
    }
    const out = writeResults(quick ? "serve-start-quick" : "serve-start", {
      runs: RUNS,
      rows,
      samples: { serve, floor },
      profiled: { readyMs: profiledMs, breakdownMs: Object.fromEntries(breakdown) },
    });
    process.stdout.write(`results: ${out}\n`);
  } finally {
    await dropPrefix(prefix);
    await vault.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
