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
 * The CLI is the bin, the bundle in dist/cli (scripts/bundle.mjs); `--cli PATH` measures another
 * build of it (tsc's `dist/sidecar/cli/main.js`, or an older checkout's). Profiles of the bundle
 * are charged to sources by esbuild's `// path` comments in it.
 *
 * `npx tsx bench/serve-start.ts [--quick] [--profile] [--cli PATH]` (`npm run build` first)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { generateAgentKey } from "../sidecar/identity/index.js";
import { freePort } from "../test/support/free-port.js";
import { dropPrefix } from "../test/support/redis.js";
import { startVaultDev } from "../test/vault-dev/server.js";
import { percentile, printTable, quick, type Row, summarizeProfile, writeResults } from "./stats.js";

const RUNS = quick ? 5 : 15;
const cliArg = process.argv.indexOf("--cli");
const CLI = resolve(cliArg > 0 ? (process.argv[cliArg + 1] ?? "") : "dist/cli/leasehold.mjs");
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

/** Wall time of `leasehold --help`, ms. */
async function helpRun(env: NodeJS.ProcessEnv): Promise<number> {
  const t = process.hrtime.bigint();
  const child = spawn(process.execPath, [CLI, "--help"], { env, stdio: "ignore" });
  const code = await exited(child);
  if (code !== 0) throw new Error(`leasehold --help exited ${code}`);
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

/** Per file of the bundle (dist/cli/*.mjs): the lines where esbuild's `// path/of/source` comments start a source. */
const bundleMarks = new Map<string, Array<[number, string]>>();

/** The source a line of the bundle came from: the nearest `// path` comment above it. */
function bundledSource(url: string, line: number): string | undefined {
  const file = url.replace(/^file:\/\//, "");
  let marks = bundleMarks.get(file);
  if (marks === undefined) {
    marks = [];
    try {
      readFileSync(file, "utf8")
        .split("\n")
        .forEach((l, i) => {
          const m = /^\/\/ (\S+\.(?:[cm]?js|ts|json))$/.exec(l);
          if (m?.[1]) marks?.push([i, m[1]]);
        });
    } catch {
      // gone (a temporary build): unattributed
    }
    bundleMarks.set(file, marks);
  }
  let found: string | undefined;
  for (const [at, source] of marks) {
    if (at > line) break;
    found = source;
  }
  return found;
}

/** A package (`npm:fastify`) or project folder (`sidecar/wire`) a frame's code belongs to. */
function owner(url: string, line = 0): string | undefined {
  const source = /\/dist\/cli\/[^/]+\.mjs$/.test(url) ? (bundledSource(url, line) ?? url) : url;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(source);
  if (pkg) return `npm:${pkg[1]}`;
  const own = /(?:^|\/)(sidecar|adapters)\/([^/]+)/.exec(source);
  if (own) return `${own[1]}/${own[2]?.replace(/\.[jt]s$/, "")}`;
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
      // Unbundled, a module's body is an anonymous function; bundled, the chunk's top level or a
      // CommonJS wrapper: the first frame from the root that belongs to a package or folder.
      const body = stack.find((n) => owner(n.callFrame.url, n.callFrame.lineNumber) !== undefined);
      key = `load ${body ? owner(body.callFrame.url, body.callFrame.lineNumber) : "(loader: resolve, read, compile)"}`;
    } else if (leaf?.functionName === "(idle)") key = "idle (waiting for I/O)";
    else if (leaf?.functionName === "(garbage collector)") key = "gc";
    else if (leaf?.functionName === "(program)") key = "program (native)";
    else {
      const at = [...stack]
        .reverse()
        .find((n) => owner(n.callFrame.url, n.callFrame.lineNumber) !== undefined);
      key = `run ${at ? owner(at.callFrame.url, at.callFrame.lineNumber) : "(node internals)"}`;
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
    const help: number[] = [];
    const load: number[] = [loadavg()[0] ?? 0];
    for (let round = 0; round < RUNS; round++) {
      floor.push(await floorRun());
      serve.push(await serveRun(configFile, port, env));
      help.push(await helpRun(env));
      load.push(loadavg()[0] ?? 0);
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
      {
        figure: "leasehold --help",
        product: median(help),
        floor: median(floor),
        unit: "ms (median)",
        better: "lower",
      },
    ];
    printTable(`serve start, median of ${RUNS} rounds (floor: node -e 0)`, rows);
    const line = (xs: number[], digits = 0) => xs.map((x) => x.toFixed(digits)).join(" ");
    process.stdout.write(
      `cli: ${CLI}\nserve samples (ms): ${line(serve)}\nhelp samples (ms): ${line(help)}\n` +
        `floor samples (ms): ${line(floor)}\nload average (1 min) before and after each round: ${line(load, 1)}\n`,
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
      cli: CLI,
      loadAverage: load,
      samples: { serve, help, floor },
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
