/** The sidecar process's RSS idle, and with 100,000 active leases in Redis (leases live in Redis, not in the process). */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Redis } from "ioredis";
import { LeaseStore } from "../sidecar/leases/index.js";
import { StackClient } from "../test/support/e2e-client.js";
import { startStack } from "../test/support/stack.js";
import { quick, writeResults } from "./stats.js";

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
    const n = quick ? 20_000 : 100_000;
    const store = new LeaseStore({ redis, prefix: stack.prefix });
    const resources = 10;
    for (let r = 0; r < resources; r++) {
      await store.syncPool(
        `mem-${r}`,
        Array.from({ length: n / resources }, (_, i) => `acct_${i}`),
        "available",
      );
    }
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
      if (batch.length >= 500) await Promise.all(batch.splice(0));
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
      `\nsidecar RSS: idle ${idle.toFixed(1)} MiB; with ${n} active leases ${loaded.toFixed(1)} MiB; after a /metrics scrape ${afterScrape.toFixed(1)} MiB\n`,
    );
    process.stdout.write(
      `results: ${writeResults("memory", { quick, leases: n, idleMiB: idle, loadedMiB: loaded, afterScrapeMiB: afterScrape })}\n`,
    );
  } finally {
    redis.disconnect();
    await stack.close();
  }
}

void main();
