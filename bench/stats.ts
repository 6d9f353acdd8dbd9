/** Small helpers shared by the benchmarks: percentiles, timing, the ratio table, JSON output. */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export interface Latency {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
}

export function summarize(samplesMs: number[]): Latency {
  const s = [...samplesMs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), mean };
}

/** Times `fn` sequentially `n` times (after `warmup` runs); milliseconds per call. */
export async function timeSequential(
  n: number,
  warmup: number,
  fn: (i: number) => Promise<unknown>,
): Promise<Latency> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn(i);
    out.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return summarize(out);
}

/** Runs `fn` from `concurrency` workers for `durationMs`; calls per second. */
export async function throughput(
  concurrency: number,
  durationMs: number,
  fn: (worker: number) => Promise<unknown>,
): Promise<number> {
  return (await throughputCpu(concurrency, durationMs, fn)).rate;
}

/**
 * {@link throughput}, with the CPU time this process spent per call (all its threads: the
 * benchmark's client, the sidecar, whatever else runs in it). Less sensitive than the rate to
 * other processes competing for the machine. Each worker first makes `warmup` calls that are
 * not counted, so connection set-up (a new keep-alive connection per worker, the sidecar's caller
 * attestation of it) and the JIT's first compilations stay out of a short run, on both sides.
 */
export async function throughputCpu(
  concurrency: number,
  durationMs: number,
  fn: (worker: number) => Promise<unknown>,
  warmup = 2,
): Promise<{ rate: number; cpuMsPerCall: number }> {
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = 0; i < warmup; i++) await fn(w);
    }),
  );
  const end = Date.now() + durationMs;
  let done = 0;
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (Date.now() < end) {
        await fn(w);
        done++;
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  return { rate: done / secs, cpuMsPerCall: (used.user + used.system) / 1000 / Math.max(1, done) };
}

export type Throughput = Awaited<ReturnType<typeof throughputCpu>>;

/**
 * Each run of `runs` (a throughput run) `rounds` times, in turn, and each one's best round: no side
 * profits from running after the others (warm-up, JIT, the host's own noise on a shared machine).
 */
export async function alternating<K extends string>(
  runs: Record<K, () => Promise<Throughput>>,
  rounds = 3,
): Promise<Record<K, Throughput>> {
  const best = {} as Record<K, Throughput>;
  for (let r = 0; r < rounds; r++) {
    for (const k of Object.keys(runs) as K[]) {
      const t = await runs[k]();
      if (best[k] === undefined || t.rate > best[k].rate) best[k] = t;
    }
  }
  return best;
}

export interface Row {
  readonly figure: string;
  readonly product: number;
  readonly floor: number;
  readonly unit: string;
  /** "lower" when smaller is better (latency), "higher" for throughput. */
  readonly better: "lower" | "higher";
  readonly goal?: string;
}

export function ratio(r: Row): number {
  return r.better === "lower" ? r.product / r.floor : r.product / r.floor;
}

export function printTable(title: string, rows: readonly Row[]): void {
  const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(3));
  process.stdout.write(`\n${title}\n`);
  process.stdout.write(
    `${"figure".padEnd(44)} ${"product".padStart(10)} ${"floor".padStart(10)} ${"ratio".padStart(7)}  unit  goal\n`,
  );
  for (const r of rows) {
    process.stdout.write(
      `${r.figure.padEnd(44)} ${fmt(r.product).padStart(10)} ${fmt(r.floor).padStart(10)} ${ratio(r).toFixed(2).padStart(7)}  ${r.unit}  ${r.goal ?? ""}\n`,
    );
  }
}

export function writeResults(name: string, data: unknown): string {
  const dir = join(process.cwd(), "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${new Date().toISOString().slice(0, 10)}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version }, ...((data as object) ?? {}) }, null, 2)}\n`,
  );
  return file;
}

export const quick = process.argv.includes("--quick");

/** `--profile=<phase>[,<phase>]`: phases to record with the V8 CPU profiler (bench/checkout.ts: `checkout`, `use`). */
export const profilePhases = new Set(
  (process.argv.find((a) => a.startsWith("--profile="))?.slice("--profile=".length) ?? "").split(","),
);

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string; lineNumber: number };
  readonly children?: number[];
}

export interface CpuProfile {
  readonly nodes: ProfileNode[];
  readonly samples: number[];
  readonly timeDeltas: number[];
}

/** Where a frame's code lives: an npm package, a project file, a Node internal, or a V8 pseudo-frame. */
function area(url: string, fn: string): string {
  if (!url) return fn.startsWith("(") ? fn : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return `npm:${pkg[1]}`;
  if (url.startsWith("node:")) return url.split("/").slice(0, 2).join("/");
  const own = /\/(sidecar|adapters|bench|test)\/(.+)$/.exec(url);
  return own ? `${own[1]}/${own[2]}` : url;
}

/** Prints the top self time per function and the top inclusive time per area of a CPU profile. */
export function summarizeProfile(p: CpuProfile, top = 25): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfFn = new Map<string, number>();
  const selfArea = new Map<string, number>();
  const inclArea = new Map<string, number>();
  let total = 0;
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  p.samples.forEach((id, i) => {
    const us = p.timeDeltas[i] ?? 0;
    total += us;
    const n = byId.get(id);
    if (!n) return;
    const { functionName, url, lineNumber } = n.callFrame;
    add(selfFn, `${functionName || "(anonymous)"} ${area(url, functionName)}:${lineNumber + 1}`, us);
    add(selfArea, area(url, functionName), us);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)?.callFrame;
      if (f) seen.add(area(f.url, f.functionName));
    }
    for (const a of seen) add(inclArea, a, us);
  });
  const table = (title: string, m: Map<string, number>) =>
    `${title}\n${[...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(
        ([k, us]) =>
          `${((100 * us) / total).toFixed(1).padStart(6)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`,
      )
      .join("\n")}\n`;
  return [
    `profile: ${(total / 1000).toFixed(0)} ms sampled`,
    table("self time by function", selfFn),
    table("self time by area", selfArea),
    table("inclusive time by area (a sample counts once per area on its stack)", inclArea),
  ].join("\n");
}

/**
 * Runs `fn`; when `phase` is named by `--profile=`, under the V8 CPU profiler (the whole
 * process: the sidecar and the benchmark's own HTTP client). Writes `bench/results/<phase>.cpuprofile`
 * (open it in Chrome DevTools) and prints a summary.
 */
export async function profiled<T>(phase: string, fn: () => Promise<T>): Promise<T> {
  if (!profilePhases.has(phase)) return fn();
  const { Session } = await import("node:inspector/promises");
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 200 });
  await session.post("Profiler.start");
  try {
    return await fn();
  } finally {
    const { profile } = (await session.post("Profiler.stop")) as { profile: CpuProfile };
    session.disconnect();
    const dir = join(process.cwd(), "bench", "results");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${phase}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    process.stdout.write(`\n${summarizeProfile(profile)}\nprofile: ${file}\n`);
  }
}
