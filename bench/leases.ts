/**
 * Lease engine benchmark (issue 4), on the Redis path only (no HTTP, Vault or audit):
 *
 * - checkout latency: LeaseStore.checkout on a pool that never runs dry, p50/p99;
 * - token-use latency: LeaseStore.use (the Redis part of every token check), and the requests it
 *   sends per use, counted with MONITOR on a Redis nobody else uses (MONITOR tells a client's
 *   requests from the commands a script runs, which INFO commandstats counts alike);
 * - the floor: a bare HGETALL of the same lease hash, timed in turn with the above, and the ratios;
 * - reaper lag (ended_at − expires_at, both Redis' clock) with 1,000,000 leases outstanding over
 *   1,000 resources, for a set of leases that come due during the run, with two Reapers (two
 *   sidecars) claiming together. Only the Redis part of ending a lease is in `expire` (no audit,
 *   no rotation). Also the requests one reaper pass sends (MONITOR), nothing being due.
 *
 *   npx tsx bench/leases.ts [--quick] [--cluster] [--leases N] [--resources N]
 *
 * --quick: smaller counts (1,000 and 10,000 leases over 20 resources), under a minute. --cluster:
 * a local three-master Redis Cluster instead of a private single redis-server. --leases: the
 * outstanding leases of the lag run (default 1,000,000). --resources: how many resources they
 * spread over (default 1,000). Prints a table; writes
 * bench/results/leases[-cluster][-quick]-<date>.json.
 */
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { Redis } from "ioredis";
import { LeaseStore, Reaper } from "../sidecar/leases/index.js";
import type { RedisClient } from "../sidecar/redis.js";
import { createLogger } from "../sidecar/logger.js";
import { startRedisCluster } from "../test/support/redis-cluster.js";
import { startPrivateRedis } from "./private-redis.js";
import { breakdown, countCommands, perCall } from "./redis-command-count.js";
import { printTable, quick, type Row, summarize, writeResults } from "./stats.js";

const useCluster = process.argv.includes("--cluster");

/** The value after `--name` on the command line, as a positive integer, or `fallback`. */
function intFlag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : Number.NaN;
  return Number.isInteger(v) && v > 0 ? v : fallback;
}

/** Calls timed of each: checkout, token use, and the HGETALL floor (interleaved). */
const CALLS = quick ? 1000 : 5000;
const WARMUP = quick ? 100 : 300;
/** Outstanding leases for the reaper-lag runs. */
const SIZES = process.argv.includes("--leases")
  ? [intFlag("leases", 1_000_000)]
  : quick
    ? [1_000, 10_000]
    : [1_000_000];
/** Resources the outstanding leases spread over. */
const RESOURCES = intFlag("resources", quick ? 20 : 1000);
/** Leases that come due during a lag run, spread evenly over WINDOW_MS. */
const DUE = quick ? 300 : 2000;
const WINDOW_MS = quick ? 3000 : 10_000;
/** Reaper settings as the sidecar's defaults (config reaper.intervalMs, Reaper batch per pass). */
const REAPER_INTERVAL_MS = 200;
const REAPER_BATCH = 500;
const REAPERS = 2;

interface Backend {
  readonly form: string;
  client(): RedisClient;
  /** One connection per server, for INFO. */
  servers(): Redis[];
  flush(): Promise<void>;
  stop(): Promise<void>;
}

async function openBackend(): Promise<Backend> {
  const clients: RedisClient[] = [];
  const track = <T extends RedisClient>(c: T): T => {
    clients.push(c);
    return c;
  };
  if (useCluster) {
    const cluster = await startRedisCluster();
    const servers = cluster.nodes.map((n) => track(new Redis(n.port, n.host)));
    return {
      form: "three-master Redis Cluster (local)",
      client: () => track(cluster.client({ scaleReads: "master" })),
      servers: () => servers,
      flush: async () => {
        await Promise.all(servers.map((s) => s.flushall()));
      },
      stop: async () => {
        for (const c of clients) c.disconnect();
        await cluster.stop();
      },
    };
  }
  const redis = await startPrivateRedis();
  const info = track(new Redis(redis.url));
  return {
    form: "single redis-server (private)",
    client: () => track(new Redis(redis.url)),
    servers: () => [info],
    flush: async () => {
      await info.flushall();
    },
    stop: async () => {
      for (const c of clients) c.disconnect();
      await redis.stop();
    },
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
let seq = 0;
const spec = (resource: string, agent: string) => ({
  id: `lse_bench${String(++seq).padStart(12, "0")}`,
  resource,
  agent,
  task: { id: "BENCH-1", description: "lease benchmark" },
  intent: { action: "read", tool: "psql" },
});

/** Calls whose commands MONITOR counts (MONITOR slows the server, so not during the timing). */
const COUNTED = 200;

/** Commands per call of `fn`, counted over `COUNTED` sequential calls from index `from`. */
async function commandsOf(b: Backend, from: number, fn: (i: number) => Promise<unknown>) {
  const c = await countCommands(b.servers(), async () => {
    for (let i = 0; i < COUNTED; i++) await fn(from + i);
  });
  return {
    sent_per_call: perCall(c.sent, COUNTED),
    sent: breakdown(c.sent, COUNTED),
    in_scripts: breakdown(c.inScripts, COUNTED),
  };
}

/**
 * Times several operations call by call, in turn (a, b, a, b, …), so that a product and its floor
 * see the same machine: on a busy host, timing them one after the other compares two moments.
 */
async function timeInterleaved(n: number, fns: ReadonlyArray<(i: number) => Promise<unknown>>) {
  const samples = fns.map(() => [] as number[]);
  for (let i = 0; i < n; i++) {
    for (const [k, fn] of fns.entries()) {
      const t = process.hrtime.bigint();
      await fn(i);
      samples[k]?.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  }
  return samples.map((s) => summarize(s));
}

/** Checkout and token-use latency, and the bare HGETALL floor. */
async function latencies(b: Backend, prefix: string) {
  const store = new LeaseStore({ redis: b.client(), prefix });
  const raw = b.client();
  const resource = "bench-latency";
  const accounts = Array.from({ length: CALLS + WARMUP + COUNTED }, (_, i) => `acct_${i}`);
  await store.syncPool(resource, accounts, "available");
  const ids: string[] = [];
  const checkout = async () => {
    const r = await store.checkout(spec(resource, "spiffe://example.org/agent/bench"), 600_000, 3_600_000);
    if (!r.ok) throw new Error("the pool ran dry");
    ids.push(r.lease.id);
  };
  for (let i = 0; i < WARMUP; i++) await checkout();

  const idAt = (i: number) => ids[i % ids.length] ?? "";
  // The lease hash as the store lays it out (one hash tag per resource); checked to be non-empty.
  const leaseKey = (id: string) => `${prefix}{r:${resource}}:lease:${id}`;
  if (Object.keys(await raw.hgetall(leaseKey(idAt(0)))).length === 0) {
    throw new Error("the floor's key layout does not match the lease store's");
  }
  const use = async (i: number) => {
    const u = await store.use(resource, idAt(i));
    if (u.lease?.state !== "active") throw new Error("use() did not read the active lease");
  };
  const floorCall = (i: number) => raw.hgetall(leaseKey(idAt(i)));
  for (let i = 0; i < WARMUP; i++) await Promise.all([use(i), floorCall(i)]);
  const [coLat, useLat, floorLat] = await timeInterleaved(CALLS, [checkout, use, floorCall]);
  if (!coLat || !useLat || !floorLat) throw new Error("missing samples");
  const co = { latency: coLat, ...(await commandsOf(b, 0, checkout)) };
  const useOut = { latency: useLat, ...(await commandsOf(b, 0, use)) };
  const floor = { latency: floorLat, ...(await commandsOf(b, 0, floorCall)) };
  return { checkout: co, use: useOut, floor };
}

/** Reaper lag with `size` leases outstanding, `DUE` of them coming due over `WINDOW_MS`. */
async function reaperLag(b: Backend, prefix: string, size: number) {
  const setupStart = performance.now();
  // One cluster key: every reaper must accept the records this store signs.
  const macKey = randomBytes(32);
  const store = new LeaseStore({ redis: b.client(), prefix, macKey });
  const perResource = Math.ceil(size / RESOURCES);
  const resources = Array.from({ length: RESOURCES }, (_, r) => `bench-${r}`);
  await Promise.all(
    resources.map((res) =>
      store.syncPool(
        res,
        Array.from({ length: perResource }, (_, i) => `acct_${i}`),
        "available",
      ),
    ),
  );
  const agents = Array.from({ length: 1000 }, (_, i) => `spiffe://example.org/agent/bench-${i}`);
  // Many checkouts in flight at once: ioredis writes them back to back (one pipeline per chunk).
  const create = async (from: number, to: number, ttl: (i: number) => number, out?: string[][]) => {
    const CHUNK = 2000;
    for (let s = from; s < to; s += CHUNK) {
      const batch = Array.from({ length: Math.min(CHUNK, to - s) }, (_, k) => s + k);
      const got = await Promise.all(
        batch.map((i) => {
          const res = resources[i % RESOURCES] ?? "";
          const t = ttl(i);
          return store.checkout(spec(res, agents[i % agents.length] ?? ""), t, t + 60_000);
        }),
      );
      got.forEach((g, k) => {
        if (!g.ok) throw new Error(`checkout ${batch[k]} found no free account`);
        out?.push([g.lease.resource, g.lease.id]);
      });
    }
  };
  const longLived = size - DUE;
  await create(0, longLived, () => 3_600_000);
  const due: string[][] = [];
  // The measured leases come due evenly over the window, starting 1 s from now.
  await create(longLived, size, (i) => 1000 + Math.floor(((i - longLived) / DUE) * WINDOW_MS), due);
  const setupMs = performance.now() - setupStart;

  const log = createLogger("silent");
  const endedBy = new Map<string, number>();
  const reapers = Array.from({ length: REAPERS }, () => {
    const s = new LeaseStore({ redis: b.client(), prefix, macKey });
    return new Reaper({
      leases: s,
      expire: async (resource, id) => {
        const r = await s.end(resource, id, "expired");
        if (r.ended) endedBy.set(id, (endedBy.get(id) ?? 0) + 1);
      },
      intervalMs: REAPER_INTERVAL_MS,
      batch: REAPER_BATCH,
      log,
    });
  });
  // The loop of Reaper.start() (a pass, then intervalMs), timed pass by pass.
  const passes: number[] = [];
  let stop = false;
  const loops = reapers.map(async (r) => {
    while (!stop) {
      const t = performance.now();
      await r.runOnce();
      passes.push(performance.now() - t);
      await sleep(REAPER_INTERVAL_MS);
    }
  });
  const deadline = Date.now() + 1000 + WINDOW_MS + 60_000;
  await sleep(1000 + WINDOW_MS);
  while (due.some(([, id]) => endedBy.get(id ?? "") !== 1) && Date.now() < deadline) await sleep(100);
  stop = true;
  await Promise.all(loops);

  const lags: number[] = [];
  let missing = 0;
  for (let s = 0; s < due.length; s += 1000) {
    const recs = await Promise.all(due.slice(s, s + 1000).map(([res, id]) => store.get(res ?? "", id ?? "")));
    for (const l of recs) {
      if (l?.state === "ended" && l.ended_at !== undefined) lags.push(l.ended_at - l.expires_at);
      else missing++;
    }
  }
  // One more pass with nothing due, its requests counted: the cost of a pass whatever is due.
  const idle = reapers[0];
  const passCommands = idle ? await countCommands(b.servers(), () => idle.runOnce()) : undefined;
  const twice = [...endedBy.values()].filter((n) => n > 1).length;
  const early = [...endedBy.keys()].length - due.length;
  return {
    outstanding: size,
    resources: RESOURCES,
    due: DUE,
    window_ms: WINDOW_MS,
    reapers: REAPERS,
    interval_ms: REAPER_INTERVAL_MS,
    setup_ms: Math.round(setupMs),
    lag_ms: summarize(lags),
    lag_max_ms: Math.max(...lags),
    pass_ms: summarize(passes),
    requests_per_pass: passCommands ? perCall(passCommands.sent, 1) : undefined,
    requests_per_pass_by_command: passCommands ? breakdown(passCommands.sent, 1) : undefined,
    not_ended: missing,
    ended_twice: twice,
    ended_but_not_due: early,
  };
}

async function main(): Promise<void> {
  const b = await openBackend();
  try {
    const stamp = Date.now().toString(36);
    process.stdout.write(
      `lease benchmark on a ${b.form}${quick ? " (quick)" : ""}, load ${loadavg()[0]?.toFixed(1)}\n`,
    );
    const lat = await latencies(b, `lhbench:lat:${stamp}:`);
    await b.flush();
    const lag = [];
    for (const size of SIZES) {
      process.stdout.write(`reaper lag with ${size} outstanding leases…\n`);
      lag.push(await reaperLag(b, `lhbench:lag${size}:${stamp}:`, size));
      await b.flush();
    }

    const rows: Row[] = [
      {
        figure: "token use p50 (LeaseStore.use vs HGETALL)",
        product: lat.use.latency.p50,
        floor: lat.floor.latency.p50,
        unit: "ms",
        better: "lower",
      },
      {
        figure: "token use p99 (LeaseStore.use vs HGETALL)",
        product: lat.use.latency.p99,
        floor: lat.floor.latency.p99,
        unit: "ms",
        better: "lower",
      },
      {
        figure: "requests per token use (vs HGETALL)",
        product: lat.use.sent_per_call,
        floor: lat.floor.sent_per_call,
        unit: "cmds",
        better: "lower",
        goal: "1",
      },
      {
        figure: "checkout p50 (LeaseStore.checkout vs HGETALL)",
        product: lat.checkout.latency.p50,
        floor: lat.floor.latency.p50,
        unit: "ms",
        better: "lower",
      },
      {
        figure: "checkout p99 (LeaseStore.checkout vs HGETALL)",
        product: lat.checkout.latency.p99,
        floor: lat.floor.latency.p99,
        unit: "ms",
        better: "lower",
      },
      {
        figure: "requests per checkout (vs HGETALL)",
        product: lat.checkout.sent_per_call,
        floor: lat.floor.sent_per_call,
        unit: "cmds",
        better: "lower",
      },
    ];
    printTable("Lease engine on the Redis path", rows);
    process.stdout.write(
      `\n${"reaper lag (expires_at → ended)".padEnd(44)} ${"p50".padStart(8)} ${"p99".padStart(8)} ${"max".padStart(8)}  pass p50/p99   reqs/pass   goal\n`,
    );
    for (const l of lag) {
      process.stdout.write(
        `${`${l.outstanding} outstanding/${l.resources} resources, ${l.due} due`.padEnd(44)} ${l.lag_ms.p50.toFixed(0).padStart(6)}ms ${l.lag_ms.p99.toFixed(0).padStart(6)}ms ${l.lag_max_ms.toFixed(0).padStart(6)}ms  ${l.pass_ms.p50.toFixed(1)}/${l.pass_ms.p99.toFixed(1)} ms   ${String(l.requests_per_pass ?? "?").padStart(6)}   p99 < 1000 ms${l.not_ended || l.ended_twice || l.ended_but_not_due ? `  (not ended ${l.not_ended}, twice ${l.ended_twice}, early ${l.ended_but_not_due})` : ""}\n`,
      );
    }
    const file = writeResults(`leases${useCluster ? "-cluster" : ""}${quick ? "-quick" : ""}`, {
      benchmark: "leases",
      quick,
      redis: b.form,
      load_average: loadavg(),
      checkout: lat.checkout,
      use: lat.use,
      floor_hgetall: lat.floor,
      ratios: {
        use_p50_over_hgetall: lat.use.latency.p50 / lat.floor.latency.p50,
        use_p99_over_hgetall: lat.use.latency.p99 / lat.floor.latency.p99,
        checkout_p50_over_hgetall: lat.checkout.latency.p50 / lat.floor.latency.p50,
      },
      reaper_lag: lag,
    });
    process.stdout.write(`\nwrote ${file}\n`);
  } finally {
    await b.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `bench/leases: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
