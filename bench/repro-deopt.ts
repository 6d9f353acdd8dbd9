/**
 * Repro attempt for the V8 fatal error ("unreachable code" in the Deoptimizer) seen once in the
 * checkout bench's reveal phase (docs: bench/README.md, "V8 Deoptimizer abort").
 * `node --import tsx bench/repro-deopt.ts <mode> <seconds>`; modes:
 * - `cedar-hrtime`: policy.decide (cedar-wasm statefulIsAuthorized) awaited in a loop, each call
 *   timed with process.hrtime.bigint() as bench/stats.ts timeSequential does;
 * - `cedar-now`: the same timed with performance.now();
 * - `cedar-bare`: the same, untimed.
 * Prints the number of calls made; a crash kills the process (exit by signal).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { loadPolicy } from "../sidecar/policy/index.js";

const mode = process.argv[2] ?? "cedar-hrtime";
const seconds = Number(process.argv[3] ?? 60);
const POLICY = `@id("bench")\npermit (principal, action, resource) when { context.intent == "read" };\n`;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "lh-deopt-"));
  await writeFile(join(dir, "policy.cedar"), POLICY);
  const policy = await loadPolicy({ file: join(dir, "policy.cedar") });
  const call = async (i: number) =>
    policy.decide({
      principal: "spiffe://example.org/agent/bench",
      action: i % 2 ? "reveal" : "checkout",
      resource: "bench-db",
      context: {
        task_id: "B-1",
        intent: "read",
        tool: "psql",
        ttl: 300,
        hour_utc: 12,
        active_leases: 0,
        approved: false,
        dpop: false,
        caller: { attested: false, uid: -1, exe_sha256: "", cgroup: "" },
      },
    });
  const end = Date.now() + seconds * 1000;
  let n = 0;
  let sum = 0;
  while (Date.now() < end) {
    for (let k = 0; k < 1000; k++, n++) {
      if (mode === "cedar-hrtime") {
        const t = process.hrtime.bigint();
        await call(n);
        sum += Number(process.hrtime.bigint() - t) / 1e6;
      } else if (mode === "cedar-now") {
        const t = performance.now();
        await call(n);
        sum += performance.now() - t;
      } else {
        await call(n);
      }
    }
  }
  process.stdout.write(`${mode}: ${n} calls in ${seconds}s, mean ${(sum / n).toFixed(4)} ms\n`);
  await rm(dir, { recursive: true, force: true });
}

void main();
