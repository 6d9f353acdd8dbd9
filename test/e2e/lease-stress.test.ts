import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { generateAgentKey, mintIdentityAssertion } from "../../sidecar/identity/index.js";
import { freePort } from "../support/free-port.js";
import { type LocalRedisCluster, startRedisCluster } from "../support/redis-cluster.js";
import { testPrefix } from "../support/redis.js";
import {
  repoRoot,
  STARTUP_TIMEOUT_MS,
  type SidecarProcess,
  startSidecarProcess,
} from "../support/sidecar-process.js";
import { type Stack, startStack } from "../support/stack.js";
import { realVaultConfigured, useVault, type VaultHandle } from "../support/vault.js";
import { abortWhenExited, waitFor } from "../support/wait-for.js";

/**
 * Issue 4's stress test: 200 agents, 10 accounts of one resource, TTLs of 1–3 s, two sidecar
 * processes sharing one Redis (single server, then a three-master Redis Cluster), 20 s of load.
 * Checked: never more than 10 active leases and never two on one account (I1), every lease ended
 * exactly once (I5), a lease's token refused right after its end on either sidecar (I4), and every
 * ended lease rotated.
 */

const AGENTS = 200;
const ACCOUNTS = 10;
const LOAD_MS = 20_000;
const RESOURCE = "orders-db";

interface Http {
  status: number;
  json: Record<string, unknown>;
}

interface Issued {
  id: string;
  account: string;
  ttl: number;
  plan: (typeof PLANS)[number];
}

interface Run {
  issued: Issued[];
  busy: number;
  /** Unexpected answers, as "what: status code" (never a token). */
  problems: string[];
  /** Largest number of active leases any poll of GET /v1/leases saw. */
  maxActive: number;
  polls: number;
}

/** What an agent does with its lease, in turn: mostly check in, sometimes let it run out, or an operator revokes it. */
const PLANS = ["checkin", "expire", "checkin", "revoke"] as const;

/** An agent's think time and back-off: the load's shape, never a wait for something to happen. */
const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const rand = (min: number, max: number) => min + Math.floor(Math.random() * (max - min + 1));

async function call(
  base: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown } = {},
): Promise<Http> {
  // Marks the request as not from a browser page (the sidecar's CSRF rule for bodiless DELETEs).
  const headers: Record<string, string> = { "x-leasehold-request": "true" };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

function errorCode(r: Http): string {
  return ((r.json.error as { code?: string } | undefined)?.code ?? "") || String(r.status);
}

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

/**
 * The Vault dev server in a process of its own (a real Vault when VAULT_ADDR is set): in this
 * process it would share one event loop with 200 busy agents and slow every rotation down.
 */
async function vaultProcess(): Promise<VaultHandle> {
  if (realVaultConfigured()) return useVault();
  const token = `hvs.stress-${randomBytes(12).toString("hex")}`;
  const child = spawn(
    join(repoRoot(), "node_modules/.bin/tsx"),
    [join(repoRoot(), "test/vault-dev/main.ts"), "--port", "0", "--root-token", token],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    out += d.toString();
  });
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

/** Medians (ms, audit timestamps) of how long leases were held, waited for rotation, and rotated. */
function phaseMedians(records: ReadonlyArray<Record<string, unknown>>, ids: readonly string[]) {
  const at = (events: readonly string[]) => {
    const m = new Map<string, number>();
    for (const r of records) {
      if (events.includes(String(r.event))) m.set(String(r.lease_id), Date.parse(String(r.time)));
    }
    return m;
  };
  const median = (from: Map<string, number>, to: Map<string, number>) => {
    const xs = ids
      .map((id) => (to.get(id) ?? Number.NaN) - (from.get(id) ?? Number.NaN))
      .filter((x) => Number.isFinite(x))
      .sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)] ?? Number.NaN;
  };
  const [checkout, ended, started, rotated] = [
    at(["checkout"]),
    at(["checkin", "expiry", "revocation"]),
    at(["rotation_started"]),
    at(["rotation_succeeded"]),
  ];
  return {
    held: median(checkout, ended),
    toRotation: median(ended, started),
    rotation: median(started, rotated),
  };
}

function stressSuite(form: "single Redis" | "three-node Redis Cluster"): void {
  describe(`${AGENTS} agents, ${ACCOUNTS} accounts, two sidecars on ${form}`, () => {
    let cluster: LocalRedisCluster | undefined;
    let vault: VaultHandle;
    let stack: Stack;
    let second: SidecarProcess;
    let bases: [string, string];
    let admin: string;
    const keyFiles: string[] = [];

    beforeAll(async () => {
      if (form !== "single Redis") cluster = await startRedisCluster();
      const redis = cluster
        ? { prefix: testPrefix("stress"), cluster: cluster.nodes.map((n) => `${n.host}:${n.port}`) }
        : undefined;
      vault = await vaultProcess();
      stack = await startStack({ logLevel: "warn", vault, config: redis ? { redis } : {} });
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
        env: { LH_TEST_VAULT_TOKEN: stack.vault.token },
      });
      bases = [stack.sidecar.url, second.url];
      admin = (await readFile(join(stack.dir, "state", "admin.token"), "utf8")).trim();

      const trust = join(stack.dir, "trust");
      for (let i = 0; i < AGENTS; i++) {
        const id = `spiffe://example.org/agent/stress-${String(i).padStart(3, "0")}`;
        keyFiles.push((await generateAgentKey({ id, outDir: trust })).keyFile);
      }
      const accounts = Array.from({ length: ACCOUNTS }, (_, i) => `app_stress_${i}`);
      for (const a of accounts) await stack.createRole(a, randomBytes(18).toString("base64url"));
      const reg = {
        name: RESOURCE,
        adapter: "postgres",
        connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
        rotateWith: "admin",
        admin: { username: "leasehold_admin", password: stack.adminPassword },
        accounts,
        lease: { defaultTtl: 2, maxTtl: 10 },
      };
      const regFile = join(stack.dir, "stress.yaml");
      await writeFile(regFile, JSON.stringify(reg));
      const r = await stack.cli("resources", "register", "-f", regFile);
      expect(r.code, r.stderr).toBe(0);
      await waitFor("every account imported and available", async () =>
        (await accountStates()).every((s) => s === "available"),
      );
    }, 300_000);

    afterAll(async () => {
      await second?.stop().catch(() => undefined);
      await stack?.close();
      await vault?.close();
      await cluster?.stop();
    });

    const pickBase = () => bases[rand(0, 1)] ?? "";

    async function accountStates(): Promise<string[]> {
      const r = await call(pickBase(), "GET", `/v1/resources/${RESOURCE}`, { token: admin });
      if (r.status !== 200) return [];
      return (r.json.accounts as Array<{ state: string }>).map((a) => a.state);
    }

    /** One agent: check out (waiting up to 2 s), then check in, get revoked, or let the lease expire. */
    async function agent(i: number, until: number, run: Run): Promise<void> {
      const keyFile = keyFiles[i] ?? "";
      let n = 0;
      while (Date.now() < until) {
        const ttl = rand(1, 3);
        const identity = await mintIdentityAssertion({ keyFile, audience: "leasehold" });
        const co = await call(pickBase(), "POST", "/v1/checkout", {
          token: identity,
          body: {
            resource: RESOURCE,
            task: { id: `STRESS-${i}-${++n}` },
            intent: { action: "read", tool: "psql" },
            ttl,
            wait: 2,
          },
        });
        if (co.status === 409 && errorCode(co) === "resource_busy") {
          run.busy++;
          await pause(rand(20, 200));
          continue;
        }
        if (co.status !== 201) {
          run.problems.push(`checkout: ${co.status} ${errorCode(co)}`);
          await pause(200);
          continue;
        }
        const token = co.json.token as string;
        const lease = co.json.lease as { id: string; account: string };
        const plan = PLANS[run.issued.length % PLANS.length] ?? "checkin";
        run.issued.push({ id: lease.id, account: lease.account, ttl, plan });
        const path = `/v1/leases/${lease.id}`;
        if (plan === "checkin") {
          await pause(rand(0, ttl * 500));
          const use = await call(pickBase(), "GET", path, { token });
          const end = await call(pickBase(), "DELETE", path, { token });
          // A slow machine may let the lease expire first; then the token is refused as expired.
          if (use.status !== 200 && errorCode(use) !== "lease_expired")
            run.problems.push(`use before check-in: ${use.status} ${errorCode(use)}`);
          if (end.status !== 202 && errorCode(end) !== "lease_expired")
            run.problems.push(`check-in: ${end.status} ${errorCode(end)}`);
        } else if (plan === "revoke") {
          await pause(rand(0, ttl * 300));
          const rv = await call(pickBase(), "POST", `${path}/revoke`, {
            token: admin,
            body: { reason: "stress" },
          });
          if (rv.status !== 202) run.problems.push(`revoke: ${rv.status} ${errorCode(rv)}`);
          // I4: refused on its very next use, whichever sidecar it asks.
          const use = await call(pickBase(), "GET", path, { token });
          if (errorCode(use) !== "lease_revoked" && errorCode(use) !== "lease_expired")
            run.problems.push(`use after revoke: ${use.status} ${errorCode(use)}`);
        } else {
          // The lease runs out on Redis' clock; wait for its end (the reaper's), not for its TTL.
          await waitFor(
            `lease ${lease.id} to be ended by a reaper`,
            async () => (await call(pickBase(), "GET", path, { token: admin })).json.state === "ended",
            { intervalMs: 250 },
          );
          const use = await call(pickBase(), "GET", path, { token });
          if (errorCode(use) !== "lease_expired")
            run.problems.push(`use after expiry: ${use.status} ${errorCode(use)}`);
        }
      }
    }

    /** Polls GET /v1/leases on both sidecars: never more active leases than accounts, never two on one account. */
    async function monitor(until: () => boolean, run: Run): Promise<void> {
      while (!until()) {
        const answers = await Promise.all(
          bases.map((b) => call(b, "GET", `/v1/leases?resource=${RESOURCE}`, { token: admin })),
        );
        for (const r of answers) {
          if (r.status !== 200) {
            run.problems.push(`list: ${r.status} ${errorCode(r)}`);
            continue;
          }
          const leases = (r.json.leases as Array<{ account: string; state: string }>).filter(
            (l) => l.state === "active",
          );
          run.polls++;
          run.maxActive = Math.max(run.maxActive, leases.length);
          const accounts = new Set(leases.map((l) => l.account));
          if (accounts.size !== leases.length) run.problems.push("I1: two active leases on one account");
        }
        // The poll rate: a sample of the list, not a wait for anything.
        await pause(100);
      }
    }

    it("keeps I1, ends every lease exactly once and rotates every ended lease", async () => {
      const run: Run = { issued: [], busy: 0, problems: [], maxActive: 0, polls: 0 };
      const until = Date.now() + LOAD_MS;
      let loadDone = false;
      const watching = monitor(() => loadDone, run);
      await Promise.all(Array.from({ length: AGENTS }, (_, i) => agent(i, until, run)));
      loadDone = true;
      await watching;
      expect(run.problems, run.problems.slice(0, 10).join("\n")).toEqual([]);
      expect(run.polls).toBeGreaterThan(5);
      expect(run.maxActive).toBeLessThanOrEqual(ACCOUNTS);
      // The pool was really contended: accounts were handed out again after rotation, and some
      // requests had to give up.
      expect(run.issued.length).toBeGreaterThan(ACCOUNTS);
      expect(run.busy).toBeGreaterThan(0);
      const plans = new Set(run.issued.map((l) => l.plan));
      expect([...plans].sort()).toEqual(["checkin", "expire", "revoke"]);

      // Every lease ends (the reaper takes the expired ones) and every account comes back rotated.
      await waitFor("every lease to end", async () => {
        const r = await call(pickBase(), "GET", `/v1/leases?resource=${RESOURCE}`, { token: admin });
        return r.status === 200 && (r.json.leases as unknown[]).length === 0;
      });
      await waitFor("every account rotated and available", async () =>
        (await accountStates()).every((s) => s === "available"),
      );
      const ids = run.issued.map((l) => l.id);
      const state = join(stack.dir, "state");
      let records: Array<Record<string, unknown>> = [];
      const rotated = new Set<string>();
      await waitFor("a rotation_succeeded record for every lease", async () => {
        records = [
          ...(await auditRecords(state, "audit.jsonl")),
          ...(await auditRecords(state, "audit-2.jsonl")),
        ];
        rotated.clear();
        for (const r of records) if (r.event === "rotation_succeeded") rotated.add(String(r.lease_id));
        return ids.every((id) => rotated.has(id));
      });
      const checkouts = records.filter((r) => r.event === "checkout").map((r) => String(r.lease_id));
      expect(checkouts.sort()).toEqual([...ids].sort());
      const ends = new Map<string, string[]>();
      for (const r of records) {
        if (r.event === "checkin" || r.event === "expiry" || r.event === "revocation") {
          const id = String(r.lease_id);
          ends.set(id, [...(ends.get(id) ?? []), String(r.event)]);
        }
      }
      const notOnce = ids.filter((id) => ends.get(id)?.length !== 1);
      expect(notOnce, `leases not ended exactly once: ${notOnce.slice(0, 5).join(", ")}`).toEqual([]);
      expect([...ends.keys()].filter((id) => !ids.includes(id))).toEqual([]);
      // Leases the agents let run out were ended by a reaper, not by anyone else.
      for (const l of run.issued.filter((x) => x.plan === "expire"))
        expect(ends.get(l.id)).toEqual(["expiry"]);

      // I1 on Redis' own clock: one account's leases never overlap in time.
      const byAccount = new Map<string, Array<{ from: number; to: number; id: string }>>();
      for (const l of run.issued) {
        const r = await call(pickBase(), "GET", `/v1/leases/${l.id}`, { token: admin });
        expect(r.status).toBe(200);
        const from = Date.parse(String(r.json.issued_at));
        const to = Date.parse(String(r.json.ended_at));
        expect(r.json.state).toBe("ended");
        byAccount.set(l.account, [...(byAccount.get(l.account) ?? []), { from, to, id: l.id }]);
      }
      for (const [account, spans] of byAccount) {
        spans.sort((a, b) => a.from - b.from);
        for (let i = 1; i < spans.length; i++) {
          const [prev, cur] = [spans[i - 1], spans[i]];
          expect(cur?.from, `${account}: ${cur?.id} issued before ${prev?.id} ended`).toBeGreaterThanOrEqual(
            prev?.to ?? 0,
          );
        }
      }
      const t = phaseMedians(records, ids);
      process.stdout.write(
        `lease stress on ${form}: ${run.issued.length} leases, ${run.busy} busy answers, ` +
          `max ${run.maxActive} active over ${run.polls} polls; median ms: held ${t.held}, ` +
          `end to rotation start ${t.toRotation}, rotation ${t.rotation}\n`,
      );
    }, 400_000);
  });
}

stressSuite("single Redis");
stressSuite("three-node Redis Cluster");
