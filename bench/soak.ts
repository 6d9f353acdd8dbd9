/**
 * Soak: `npm run bench -- --soak=30m` (also `90s`, `2h`; bench/run.ts runs only this bench when
 * `--soak=` is given, and never in other runs). 50 agents, each its own identity and key, run
 * mixed work at a steady rate against two `leasehold serve` processes (one Redis prefix, one
 * Vault dev server in its own process, a private PostgreSQL cluster whose accounts are really
 * rotated): checkouts, reveals, renewals, leases left to expire, operator revocations and
 * check-ins (each end followed by a rotation). Every report interval (a minute, or a tenth of a
 * shorter run) it prints each sidecar's RSS and event-loop delay (its /metrics), the operations
 * and errors by kind, and the reaper's lag (ended_at − expires_at of expired leases, from the
 * lease records). At the end, from both audit logs: every checkout ended exactly once (check-in,
 * expiry or revocation), none ended twice, every end rotated; and each sidecar's RSS grew less
 * than 10% after warm-up. PASS/FAIL with the numbers; bench/results/soak-<date>.json.
 * `--soak-rate=<checkouts per second>` (default 10).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import { parse, stringify } from "yaml";
import { generateAgentKey, mintIdentityAssertion } from "../sidecar/identity/index.js";
import { freePort } from "../test/support/free-port.js";
import {
  repoRoot,
  STARTUP_TIMEOUT_MS,
  type SidecarProcess,
  startSidecarProcess,
} from "../test/support/sidecar-process.js";
import { agentsReadPolicy, type Stack, startStack } from "../test/support/stack.js";
import type { VaultHandle } from "../test/support/vault.js";
import { abortWhenExited, waitFor } from "../test/support/wait-for.js";
import { percentile, writeResults } from "./stats.js";

const AGENTS = 50;
const ACCOUNTS = 64;
const RESOURCE = "soak-db";
/** What an agent does with a lease, in turn across all agents. */
const PLANS = ["checkin", "renew", "expire", "checkin", "revoke", "checkin"] as const;
type Plan = (typeof PLANS)[number];
const RSS_GROWTH_LIMIT = 0.1;

/** `30m`, `90s`, `2h`, or plain seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`--soak=${text}: expected a duration like 30m, 90s or 2h`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"] ?? 1000;
  return Number(m[1]) * unit;
}

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const rand = (min: number, max: number) => min + Math.floor(Math.random() * (max - min + 1));

interface Http {
  status: number;
  json: Record<string, unknown>;
}

async function call(
  base: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown } = {},
): Promise<Http> {
  const headers: Record<string, string> = { "x-leasehold-request": "true" };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    // A non-JSON answer: its status is what is counted.
  }
  return { status: res.status, json };
}

const errorCode = (r: Http) =>
  ((r.json.error as { code?: string } | undefined)?.code ?? "") || String(r.status);

/** Every audit record a sidecar wrote (its file and any rotated files). */
async function auditRecords(dir: string, file: string): Promise<Array<Record<string, unknown>>> {
  const names = (await readdir(dir)).filter((n) => n === file || n.startsWith(`${file}.`));
  const out: Array<Record<string, unknown>> = [];
  for (const n of names) {
    for (const line of (await readFile(join(dir, n), "utf8")).split("\n")) {
      if (line.trim()) out.push(JSON.parse(line) as Record<string, unknown>);
    }
  }
  return out;
}

/** The Vault dev server in a process of its own, so it shares no event loop with the agents. */
async function vaultProcess(): Promise<VaultHandle> {
  const token = `hvs.soak-${randomBytes(12).toString("hex")}`;
  const child = spawn(
    join(repoRoot(), "node_modules/.bin/tsx"),
    [join(repoRoot(), "test/vault-dev/main.ts"), "--port", "0", "--root-token", token],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  let out = "";
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-4000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const address = await waitFor(
    () => `vault-dev's "listening on" line: ${out}`,
    () => /listening on (http:\/\/\S+)/.exec(out)?.[1],
    { timeoutMs: STARTUP_TIMEOUT_MS, signal: abortWhenExited(exited, "vault-dev", () => out) },
  ).catch((err: unknown) => {
    child.kill("SIGKILL");
    throw err;
  });
  return {
    address,
    token,
    mount: "secret",
    close: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/** A process's resident set, bytes (/proc). */
async function rssOf(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, "utf8").catch(() => ""));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** One gauge from a Prometheus text page. */
function gauge(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, "m").exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

interface Issued {
  id: string;
  plan: Plan;
  agent: number;
  /** The checkout's answer: when the lease runs out (ms). */
  expiresAt: number;
}

interface Interval {
  t_s: number;
  ops: Record<string, number>;
  errors: Record<string, number>;
  busy: number;
  rss_mb: number[];
  eventloop_p99_ms: number[];
  eventloop_max_ms: number[];
  reaper_lag_ms: { n: number; p50: number; p99: number; max: number };
}

const mb = (b: number) => Math.round((b / 1048576) * 10) / 10;
const bump = (m: Record<string, number>, k: string) => {
  m[k] = (m[k] ?? 0) + 1;
};

async function main(): Promise<void> {
  const soakArg = arg("soak");
  if (!soakArg) {
    process.stdout.write("soak: off (run it with --soak=<duration>, e.g. --soak=30m)\n");
    return;
  }
  const durationMs = parseDuration(soakArg);
  const rate = Number(arg("soak-rate") ?? 10);
  const intervalMs = Math.min(60_000, durationMs / 10);
  // Warm-up: a tenth of the run, at least a minute (JIT, pools, caches), at most half of it.
  const warmupMs = Math.min(durationMs / 2, Math.max(60_000, durationMs / 10));
  const vault = await vaultProcess();
  let stack: Stack | undefined;
  let second: SidecarProcess | undefined;
  let closing = false;
  const redis = new Redis("redis://127.0.0.1:6379/0");
  try {
    stack = await startStack({
      logLevel: "warn",
      vault,
      policy: agentsReadPolicy([RESOURCE]),
      // The product's reaper interval (the test stack's is shorter).
      config: { reaper: { intervalMs: 200 } },
    });
    let bases = [stack.sidecar.url];
    const pickBase = () => bases[rand(0, bases.length - 1)] ?? "";
    const admin = (await readFile(join(stack.dir, "state", "admin.token"), "utf8")).trim();
    const keyFiles: string[] = [];
    for (let i = 0; i < AGENTS; i++) {
      const id = `spiffe://example.org/agent/soak-${String(i).padStart(2, "0")}`;
      keyFiles.push((await generateAgentKey({ id, outDir: join(stack.dir, "trust") })).keyFile);
    }
    const accounts = Array.from({ length: ACCOUNTS }, (_, i) => ({
      name: `app_soak_${i}`,
      password: randomBytes(18).toString("base64url"),
    }));
    for (const a of accounts) await stack.createRole(a.name, a.password);
    const regFile = join(stack.dir, "soak.yaml");
    await writeFile(
      regFile,
      JSON.stringify({
        name: RESOURCE,
        adapter: "postgres",
        connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
        rotateWith: "admin",
        admin: { username: "leasehold_admin", password: stack.adminPassword },
        // Import rotations: each account's password is rotated at registration, while the
        // sidecars' own sweeps may rotate the same new accounts (the import waits for them).
        accounts,
        lease: { defaultTtl: 30, maxTtl: 120 },
      }),
    );
    const reg = await stack.cli("resources", "register", "-f", regFile);
    if (reg.code !== 0) throw new Error(`register failed: ${reg.stderr}`);
    const accountStates = async () => {
      const r = await call(pickBase(), "GET", `/v1/resources/${RESOURCE}`, { token: admin });
      return r.status === 200 ? (r.json.accounts as Array<{ state: string }>).map((a) => a.state) : [];
    };
    await waitFor("every account imported and available", async () =>
      (await accountStates()).every((s) => s === "available"),
    );
    // The second sidecar: same Redis prefix, Vault prefix, trust and policy; its own port,
    // signing key and audit file (each sidecar keeps its own hash chain).
    const cfg = parse(await readFile(stack.configFile, "utf8")) as Record<string, Record<string, unknown>>;
    const port2 = await freePort();
    const configFile2 = join(stack.dir, "leasehold-2.yaml");
    await writeFile(
      configFile2,
      stringify({
        ...cfg,
        listen: { ...cfg.listen, port: port2 },
        tokens: { signingKey: "./state/signing-2.jwk" },
        audit: { file: "./state/audit-2.jsonl" },
      }),
    );
    second = await startSidecarProcess({
      configFile: configFile2,
      port: port2,
      env: { LH_TEST_VAULT_TOKEN: vault.token },
    });
    const sidecars = [stack.sidecar, second];
    bases = sidecars.map((s) => s.url);
    // A sidecar that dies mid-run (a crash, an abort) fails the soak.
    const exits: string[] = [];
    sidecars.forEach((s, k) => {
      void s.exited.then((code) => {
        if (!closing) exits.push(`sidecar ${k + 1} exited (code ${code}): ${s.output().slice(-2000)}`);
      });
    });

    const issued: Issued[] = [];
    let cur = { ops: {} as Record<string, number>, errors: {} as Record<string, number>, busy: 0 };
    const fail = (what: string, r: Http) => bump(cur.errors, `${what}: ${errorCode(r)}`);
    const thrown = (what: string, err: unknown) =>
      bump(
        cur.errors,
        `${what}: ${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name}`,
      );

    /** One lease's life, as the plan says. */
    async function useLease(i: number, plan: Plan): Promise<void> {
      const ttl = plan === "expire" ? rand(2, 4) : 30;
      const identity = await mintIdentityAssertion({ keyFile: keyFiles[i] ?? "", audience: "leasehold" });
      const co = await call(pickBase(), "POST", "/v1/checkout", {
        token: identity,
        body: {
          resource: RESOURCE,
          task: { id: `SOAK-${i}` },
          intent: { action: "read", tool: "psql" },
          ttl,
          wait: 5,
        },
      });
      if (co.status === 409 && errorCode(co) === "resource_busy") {
        cur.busy++;
        return;
      }
      if (co.status !== 201) return fail("checkout", co);
      bump(cur.ops, "checkout");
      const token = co.json.token as string;
      const lease = co.json.lease as { id: string; expires_at: string };
      issued.push({ id: lease.id, plan, agent: i, expiresAt: Date.parse(lease.expires_at) });
      const path = `/v1/leases/${lease.id}`;
      const reveal = await call(pickBase(), "GET", `${path}/credential`, { token });
      if (reveal.status === 200) bump(cur.ops, "reveal");
      else fail("reveal", reveal);
      if (plan === "expire") {
        bump(cur.ops, "left to expire");
        return;
      }
      await pause(rand(100, 1500));
      if (plan === "renew") {
        const rn = await call(pickBase(), "POST", `${path}/renew`, { token, body: { ttl: 30 } });
        if (rn.status === 200) bump(cur.ops, "renew");
        else fail("renew", rn);
        await pause(rand(100, 1000));
      }
      if (plan === "revoke") {
        const rv = await call(pickBase(), "POST", `${path}/revoke`, {
          token: admin,
          body: { reason: "soak" },
        });
        if (rv.status === 202) bump(cur.ops, "revoke");
        else fail("revoke", rv);
        const use = await call(pickBase(), "GET", path, { token });
        if (errorCode(use) !== "lease_revoked") fail("use after revoke", use);
        return;
      }
      const end = await call(pickBase(), "DELETE", path, { token });
      if (end.status === 202) bump(cur.ops, "checkin");
      else fail("checkin", end);
    }

    /** One agent: a lease every AGENTS/rate seconds on average, whatever each takes. */
    async function agent(i: number, until: number): Promise<void> {
      const period = (AGENTS / rate) * 1000;
      // Spread the agents' first checkouts over one period.
      await pause(rand(0, period));
      let next = Date.now();
      while (Date.now() < until) {
        const plan = PLANS[issued.length % PLANS.length] ?? "checkin";
        try {
          await useLease(i, plan);
        } catch (err) {
          thrown("request", err);
        }
        // Behind schedule (a slow machine): start again from now rather than catch up in a burst.
        next = Math.max(next + period * (0.5 + Math.random()), Date.now() - period);
        await pause(Math.max(0, next - Date.now()));
      }
    }

    // Reaper lag: leases left to expire, read back from their Redis records once ended.
    const leaseKey = (id: string) => `${stack?.prefix}{r:${RESOURCE}}:lease:${id}`;
    const pending = new Set<Issued>();
    const allLags: number[] = [];
    let measuredUpTo = 0;
    async function reaperLags(): Promise<number[]> {
      for (; measuredUpTo < issued.length; measuredUpTo++) {
        const l = issued[measuredUpTo];
        if (l?.plan === "expire") pending.add(l);
      }
      const due = [...pending].filter((l) => l.expiresAt < Date.now());
      if (due.length === 0) return [];
      const pipe = redis.pipeline();
      for (const l of due) pipe.hmget(leaseKey(l.id), "state", "expires_at", "ended_at", "end_reason");
      const got = (await pipe.exec()) ?? [];
      const lags: number[] = [];
      due.forEach((l, k) => {
        const [state, exp, ended, reason] = (got[k]?.[1] ?? []) as Array<string | null>;
        if (state !== "ended") return;
        pending.delete(l);
        if (reason === "expired") lags.push(Number(ended) - Number(exp));
      });
      allLags.push(...lags);
      return lags;
    }

    const rssSamples: Array<{ t: number; rss: number[] }> = [];
    const t0 = Date.now();
    const until = t0 + durationMs;
    const sampleRss = async () =>
      rssSamples.push({
        t: Date.now() - t0,
        rss: await Promise.all(sidecars.map((s) => rssOf(s.child.pid))),
      });
    const intervals: Interval[] = [];
    // Scrape once before the load: the event-loop histogram restarts at each scrape.
    await Promise.all(bases.map((b) => fetch(`${b}/metrics`).then((r) => r.text())));
    process.stdout.write(
      `soak: ${AGENTS} agents, ${ACCOUNTS} accounts, 2 sidecars, ~${rate} checkouts/s for ${soakArg}; ` +
        `report every ${intervalMs / 1000}s, warm-up ${warmupMs / 1000}s\n`,
    );
    process.stdout.write(
      `${"t".padStart(6)} ${"ops".padEnd(70)} ${"rss MB".padEnd(13)} ${"loop p99/max ms".padEnd(22)} reaper lag ms p50/p99/max (n)\n`,
    );
    let stopped = false;
    const reporter = (async () => {
      let nextReport = t0 + intervalMs;
      while (!stopped) {
        await pause(Math.min(5000, Math.max(0, nextReport - Date.now())));
        await sampleRss();
        if (Date.now() < nextReport && !stopped) continue;
        nextReport += intervalMs;
        const texts = await Promise.all(
          bases.map((b) =>
            fetch(`${b}/metrics`)
              .then((r) => r.text())
              .catch(() => ""),
          ),
        );
        const lags = (await reaperLags()).sort((a, b) => a - b);
        const iv: Interval = {
          t_s: Math.round((Date.now() - t0) / 1000),
          ...cur,
          rss_mb: (rssSamples.at(-1)?.rss ?? []).map(mb),
          eventloop_p99_ms: texts.map((t) => gauge(t, "nodejs_eventloop_lag_p99_seconds") * 1000),
          eventloop_max_ms: texts.map((t) => gauge(t, "nodejs_eventloop_lag_max_seconds") * 1000),
          reaper_lag_ms: {
            n: lags.length,
            p50: percentile(lags, 50),
            p99: percentile(lags, 99),
            max: lags.at(-1) ?? Number.NaN,
          },
        };
        cur = { ops: {}, errors: {}, busy: 0 };
        intervals.push(iv);
        const ops = Object.entries(iv.ops)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ");
        const f = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "-");
        process.stdout.write(
          `${`${iv.t_s}s`.padStart(6)} ${`${ops}, busy ${iv.busy}`.padEnd(70)} ${iv.rss_mb.join(" / ").padEnd(13)} ` +
            `${iv.eventloop_p99_ms.map(f).join("/")} ${iv.eventloop_max_ms.map(f).join("/")}`.padEnd(22) +
            ` ${f(iv.reaper_lag_ms.p50)}/${f(iv.reaper_lag_ms.p99)}/${f(iv.reaper_lag_ms.max)} (${iv.reaper_lag_ms.n})\n`,
        );
        const errs = Object.entries(iv.errors);
        if (errs.length)
          process.stdout.write(`        errors: ${errs.map(([k, v]) => `${k} ×${v}`).join(", ")}\n`);
      }
    })();
    await Promise.all(Array.from({ length: AGENTS }, (_, i) => agent(i, until)));
    const loadEnd = Date.now() - t0;
    stopped = true;
    await reporter;

    // Drain: every lease ends (the reaper takes those left to expire) and every account comes back rotated.
    const drain0 = Date.now();
    await waitFor(
      "every lease to end",
      async () => {
        const r = await call(pickBase(), "GET", `/v1/leases?resource=${RESOURCE}`, { token: admin });
        return r.status === 200 && (r.json.leases as unknown[]).length === 0;
      },
      { timeoutMs: 180_000, intervalMs: 250 },
    );
    await waitFor(
      "every account rotated and available",
      async () => (await accountStates()).every((s) => s === "available"),
      { timeoutMs: 180_000, intervalMs: 250 },
    );
    await reaperLags();
    const drainMs = Date.now() - drain0;

    // The audit logs: every checkout ended exactly once, every end rotated.
    const state = join(stack.dir, "state");
    const records = [
      ...(await auditRecords(state, "audit.jsonl")),
      ...(await auditRecords(state, "audit-2.jsonl")),
    ];
    const ids = new Set(issued.map((l) => l.id));
    const checkouts = new Map<string, number>();
    const ends = new Map<string, string[]>();
    const rotated = new Map<string, number>();
    const rotationFailed = new Set<string>();
    const rotationErrors: Record<string, number> = {};
    for (const r of records) {
      const id = String(r.lease_id);
      if (r.event === "checkout") checkouts.set(id, (checkouts.get(id) ?? 0) + 1);
      else if (r.event === "checkin" || r.event === "expiry" || r.event === "revocation")
        ends.set(id, [...(ends.get(id) ?? []), String(r.event)]);
      else if (r.event === "rotation_succeeded") rotated.set(id, (rotated.get(id) ?? 0) + 1);
      else if (r.event === "rotation_failed") {
        rotationFailed.add(id);
        bump(rotationErrors, String(r.error ?? r.reason ?? "?").slice(0, 120));
      }
    }
    const lost = [...ids].filter((id) => (ends.get(id)?.length ?? 0) === 0);
    const endedTwice = [...ends].filter(([, e]) => e.length > 1).map(([id]) => id);
    const unrecorded = [...ids].filter((id) => checkouts.get(id) !== 1);
    const strangers = [...new Set([...ends.keys(), ...checkouts.keys()])].filter((id) => !ids.has(id));
    const unrotated = [...ids].filter((id) => (rotated.get(id) ?? 0) < 1);
    const endKinds: Record<string, number> = {};
    for (const e of ends.values()) for (const k of e) bump(endKinds, k);
    const expiredNotByReaper = issued.filter(
      (l) => l.plan === "expire" && ends.get(l.id)?.[0] !== "expiry",
    ).length;
    const leasesOk =
      lost.length === 0 && endedTwice.length === 0 && unrecorded.length === 0 && strangers.length === 0;
    const rotationsOk = unrotated.length === 0;

    // RSS after warm-up: the mean of the 5-s samples in the window right after it against the
    // mean of the run's last window; a window is a tenth of the run (at least one report
    // interval), so one garbage collection's sawtooth does not decide.
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const span = Math.max(intervalMs, durationMs / 10);
    const window = (from: number, to: number, k: number) =>
      mean(rssSamples.filter((s) => s.t >= from && s.t < to).map((s) => s.rss[k] ?? Number.NaN));
    const rss = sidecars.map((_, k) => {
      const base = window(warmupMs, warmupMs + span, k);
      const end = window(loadEnd - span, loadEnd + 1, k);
      const peak = Math.max(...rssSamples.map((s) => s.rss[k] ?? 0));
      return { baseMb: mb(base), endMb: mb(end), peakMb: mb(peak), growth: end / base - 1 };
    });
    const rssOk = rss.every((r) => r.growth < RSS_GROWTH_LIMIT);
    const lags = [...allLags].sort((a, b) => a - b);
    const totals = { ops: {} as Record<string, number>, errors: {} as Record<string, number>, busy: 0 };
    for (const iv of intervals) {
      for (const [k, v] of Object.entries(iv.ops)) totals.ops[k] = (totals.ops[k] ?? 0) + v;
      for (const [k, v] of Object.entries(iv.errors)) totals.errors[k] = (totals.errors[k] ?? 0) + v;
      totals.busy += iv.busy;
    }
    const verdict = (ok: boolean) => (ok ? "PASS" : "FAIL");
    const out = process.stdout;
    out.write(
      `\nsoak ${soakArg}: ${issued.length} leases in ${(loadEnd / 1000).toFixed(0)}s; drained in ${(drainMs / 1000).toFixed(1)}s\n`,
    );
    out.write(
      `  totals: ${Object.entries(totals.ops)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}, busy ${totals.busy}\n`,
    );
    out.write(
      `  errors: ${
        Object.entries(totals.errors)
          .map(([k, v]) => `${k} ×${v}`)
          .join(", ") || "none"
      }\n`,
    );
    out.write(
      `  ends in the audit logs: ${Object.entries(endKinds)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}\n`,
    );
    out.write(
      `  reaper lag (expired leases, ms): n ${lags.length}, p50 ${percentile(lags, 50)}, p99 ${percentile(lags, 99)}, max ${lags.at(-1) ?? "-"}\n`,
    );
    out.write(
      `${verdict(leasesOk)} leases: ${lost.length} lost (no end), ${endedTwice.length} ended twice, ` +
        `${unrecorded.length} without exactly one checkout record, ${strangers.length} unknown ids` +
        ` (left to expire but ended otherwise: ${expiredNotByReaper})\n`,
    );
    out.write(
      `${verdict(rotationsOk)} rotations: ${unrotated.length} ended leases without rotation_succeeded, ${rotationFailed.size} with a rotation_failed record` +
        `${
          rotationFailed.size
            ? ` (${Object.entries(rotationErrors)
                .map(([k, v]) => `${k} ×${v}`)
                .join("; ")}; retried)`
            : ""
        }\n`,
    );
    for (const [k, r] of rss.entries()) {
      out.write(
        `${verdict(r.growth < RSS_GROWTH_LIMIT)} sidecar ${k + 1} RSS: ${r.baseMb} MB after warm-up → ${r.endMb} MB at the end ` +
          `(${(r.growth * 100).toFixed(1)}%, limit ${RSS_GROWTH_LIMIT * 100}%; peak ${r.peakMb} MB)\n`,
      );
    }
    const file = writeResults("soak", {
      duration: soakArg,
      durationMs,
      rate,
      agents: AGENTS,
      accounts: ACCOUNTS,
      intervalMs,
      warmupMs,
      intervals,
      totals,
      leases: issued.length,
      endKinds,
      reaperLagMs: {
        n: lags.length,
        p50: percentile(lags, 50),
        p99: percentile(lags, 99),
        max: lags.at(-1) ?? null,
      },
      checks: {
        leases: {
          pass: leasesOk,
          lost: lost.slice(0, 20),
          endedTwice: endedTwice.slice(0, 20),
          unrecorded: unrecorded.length,
          strangers: strangers.length,
        },
        rotations: {
          pass: rotationsOk,
          unrotated: unrotated.length,
          rotationFailed: rotationFailed.size,
          rotationErrors,
        },
        sidecarsAlive: { pass: exits.length === 0, exits },
        rss: { pass: rssOk, limit: RSS_GROWTH_LIMIT, sidecars: rss },
      },
      rssSamples: rssSamples.map((s) => ({ t_s: Math.round(s.t / 1000), mb: s.rss.map(mb) })),
    });
    out.write(`results: ${file}\n`);
    for (const e of exits) out.write(`FAIL ${e}\n`);
    if (!(leasesOk && rotationsOk && rssOk && exits.length === 0)) process.exitCode = 1;
  } finally {
    closing = true;
    redis.disconnect();
    await second?.stop().catch(() => undefined);
    await stack?.close();
    await vault.close();
  }
}

void main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
