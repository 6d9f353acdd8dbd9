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
  const end = Date.now() + durationMs;
  let done = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (Date.now() < end) {
        await fn(w);
        done++;
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  return done / secs;
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
