/**
 * The sidecar process's RSS idle, with 1,000,000 active leases over 1,000 resources in Redis
 * (leases live in Redis, not in the process), and after a /metrics scrape (its gauges are counted
 * in Redis, so the scrape's delta stays small). `--quick`: 20,000 leases over 10 resources;
 * `--leases N --resources N` for other sizes.
 *
 *   npx tsx bench/memory.ts [--quick] [--leases N] [--resources N]
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Redis } from "ioredis";
import { LeaseStore } from "../sidecar/leases/index.js";
import { StackClient } from "../test/support/e2e-client.js";
import { startStack } from "../test/support/stack.js";
import { quick, writeResults } from "./stats.js";

/** The value after `--name` on the command line, as a positive integer, or `fallback`. */
function intFlag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : Number.NaN;
  return Number.isInteger(v) && v > 0 ? v : fallback;
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

async function main(): Promise<void> {
  const stack = await startStack({ logLevel: "warn" });
  const redis = new Redis("redis://127.0.0.1:6379/0");
  try {
    const c = new StackClient(stack);
    const pid = stack.sidecar.child.pid ?? 0;
    await c.http("GET", "/healthz");
    const settle = quick ? 1000 : 3000;
    await new Promise((r) => setTimeout(r, settle));
    const idle = await rssMiB(pid);
    const n = intFlag("leases", quick ? 20_000 : 1_000_000);
    const resources = intFlag("resources", quick ? 10 : 1000);
    const store = new LeaseStore({ redis, prefix: stack.prefix });
    await Promise.all(
      Array.from({ length: resources }, (_, r) =>
        store.syncPool(
          `mem-${r}`,
          Array.from({ length: Math.ceil(n / resources) }, (_, i) => `acct_${i}`),
          "available",
        ),
      ),
    );
    const batch: Promise<unknown>[] = [];
    for (let i = 0; i < n; i++) {
      batch.push(
        store.checkout(
          {
            id: `lse_mem${randomBytes(8).toString("hex")}`,
            resource: `mem-${i % resources}`,
            agent: `spiffe://example.org/agent/m${i % 100}`,
            task: { id: "M" },
            intent: { action: "read" },
          },
          3_600_000,
          3_600_000,
        ),
      );
      if (batch.length >= 2000) await Promise.all(batch.splice(0));
    }
    await Promise.all(batch);
    await new Promise((r) => setTimeout(r, settle));
    const loaded = await rssMiB(pid);
    const admin = await c.adminToken();
    await fetch(`${stack.sidecar.url}/metrics`, { headers: { authorization: `Bearer ${admin}` } }).then((r) =>
      r.text(),
    );
    const afterScrape = await rssMiB(pid);
    process.stdout.write(
      `\nsidecar RSS: idle ${idle.toFixed(1)} MiB; with ${n} active leases over ${resources} resources ${loaded.toFixed(1)} MiB (goal < 300); after a /metrics scrape ${afterScrape.toFixed(1)} MiB (delta ${(afterScrape - loaded).toFixed(1)} MiB, goal < 10)\n`,
    );
    process.stdout.write(
      `results: ${writeResults(quick ? "memory-quick" : "memory", { quick, leases: n, resources, idleMiB: idle, loadedMiB: loaded, afterScrapeMiB: afterScrape, scrapeDeltaMiB: afterScrape - loaded })}\n`,
    );
  } finally {
    redis.disconnect();
    await stack.close();
  }
}

void main();
