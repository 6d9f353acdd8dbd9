import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AttestedCaller, CallerAttestation } from "../../sidecar/attest/types.js";
import { generateAgentKey, mintIdentityAssertion } from "../../sidecar/identity/index.js";
import type { CheckoutOk, LeaseService, RequestMeta } from "../../sidecar/service/index.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { attestPid } from "../support/proc-caller.js";
import { REDIS_URL } from "../support/redis.js";
import { refusal } from "../support/refusal.js";
import { useVault, type VaultHandle } from "../support/vault.js";
import { waitFor } from "../support/wait-for.js";

/*
 * Issue 22: a lease is bound to the local process that checked it out. The callers here are real
 * processes this test starts, attested from their /proc entries (test/support/proc-caller.ts, what
 * the sidecar's attestor reads for a connection's peer); the use cases run in process against real
 * Redis, the Vault dev server and MariaDB.
 */

const A = "spiffe://example.org/agent/a";
const B = "spiffe://example.org/agent/b";
const TRUST = [
  { kind: "agents", jwks: "./trust/agents.jwks.json", subjects: ["spiffe://example.org/agent/*"] },
];

type Rec = Record<string, unknown>;

let vault: VaultHandle;
let redis: Redis;
let n = 0;
const children: ChildProcess[] = [];
/** Processes started by those children (a shell's own child), killed with them. */
const grandchildren: number[] = [];

/** A request made by `caller` (resolved lazily, as the HTTP layer does), or by no connection. */
const by = (caller?: CallerAttestation): RequestMeta => ({
  requestId: `req_bind_${++n}`,
  ...(caller === undefined ? {} : { caller: async () => caller }),
});

/** Starts a real process and waits until it runs its own executable. */
async function start(cmd: string, args: string[], opts: { uid?: number; gid?: number } = {}) {
  const child = spawn(cmd, args, { stdio: "ignore", ...opts });
  children.push(child);
  await once(child, "spawn");
  const pid = child.pid as number;
  return { child, pid, caller: await attestPid(pid) };
}

async function auditRecords(lh: InProcessSidecar): Promise<Rec[]> {
  const text = await readFile(join(lh.dir, "state", "audit.jsonl"), "utf8");
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Rec);
}

async function metricValue(lh: InProcessSidecar, series: string): Promise<number> {
  const res = await lh.sidecar.app.inject({ method: "GET", url: "/metrics", headers: { host: "127.0.0.1" } });
  const line = res.body.split("\n").find((l) => l.startsWith(series));
  return line === undefined ? 0 : Number(line.slice(series.length).trim());
}

async function accountState(lh: InProcessSidecar): Promise<string> {
  const view = await lh.sidecar.resourceService.show(lh.resource);
  return view.accounts[0]?.state ?? "missing";
}

async function boot(config: Record<string, unknown>, policy?: string): Promise<InProcessSidecar> {
  const lh = await startInProcessSidecar({ vault, ...(policy === undefined ? {} : { policy }), config });
  await lh.sidecar.resourceService.register(lh.registration, {
    dryRun: false,
    pathName: lh.resource,
    actor: "admin",
    requestId: "req_register",
  });
  await waitFor("the account to be available", async () => (await accountState(lh)) === "available");
  return lh;
}

async function checkout(
  lh: InProcessSidecar,
  caller: CallerAttestation | undefined,
  agent: "a" | "b" = "a",
): Promise<CheckoutOk> {
  return (await lh.sidecar.leaseService.checkout(
    await lh.identity(agent),
    { resource: lh.resource, task: { id: "T-bind" }, intent: { action: "read", tool: "sql" }, ttl: 120 },
    by(caller),
  )) as CheckoutOk;
}

let self: AttestedCaller;

beforeAll(async () => {
  vault = await useVault();
  redis = new Redis(REDIS_URL);
  self = await attestPid(process.pid);
});

afterAll(async () => {
  for (const pid of grandchildren) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const c of children) c.kill("SIGKILL");
  redis?.disconnect();
  await vault?.close();
});

describe("bindCaller [uid, exe], onCallerMismatch refuse", () => {
  let lh: InProcessSidecar;
  let svc: LeaseService;
  // The Cedar rule of the issue: for agent b, only this test's executable (node) may check out.
  const policy = () => `
@id("agents-read")
permit (principal, action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"], resource)
when { context.intent == "read" && context.ttl <= 600 };

@id("b-only-from-node")
forbid (principal == Agent::"${B}", action == Action::"checkout", resource)
unless { context.caller.attested && context.caller.exe_sha256 == "${self.exe_sha256}" };
`;

  beforeAll(async () => {
    lh = await boot({ identity: { trust: TRUST, bindCaller: ["uid", "exe"] } }, policy());
    svc = lh.sidecar.leaseService;
  });
  afterAll(async () => {
    await lh?.close();
  });

  it("records the checkout's caller on the lease, and lets that caller use it", async () => {
    const out = await checkout(lh, self);
    const lease = await lh.sidecar.leaseService.getAny(out.lease.id);
    expect(lease).toBeTruthy();
    const stored = await lh.sidecar.leaseService.use.getOwn(out.token, out.lease.id, by(self));
    expect(stored.id).toBe(out.lease.id);
    const cred = await svc.credential(out.token, out.lease.id, by(self));
    expect(cred.password.length).toBeGreaterThanOrEqual(16);
    await svc.renew(out.token, out.lease.id, { ttl: 60 }, by(self));
    await svc.checkin(out.token, out.lease.id, by(self));
    await waitFor("the account to be available", async () => (await accountState(lh)) === "available");
  });

  it("refuses another uid on every use (401 caller_mismatch), audits both callers, counts and announces it", async () => {
    const out = await checkout(lh, self);
    const other = await start("sleep", ["300"], { uid: 65534, gid: 65534 });
    expect(other.caller.uid).toBe(65534);
    const series = `leasehold_caller_mismatch_total{resource="${lh.resource}",part="uid"}`;
    const before = await metricValue(lh, series);

    const uses: Array<[string, () => Promise<unknown>]> = [
      ["get", () => svc.getOwn(out.token, out.lease.id, by(other.caller))],
      ["credential", () => svc.credential(out.token, out.lease.id, by(other.caller))],
      ["renew", () => svc.renew(out.token, out.lease.id, {}, by(other.caller))],
      [
        "tool call",
        () => svc.toolCall(out.token, out.lease.id, { tool: "sql", action: "read" }, by(other.caller)),
      ],
      ["listener login", () => svc.proxyCredential(out.token, out.lease.id, lh.resource, by(other.caller))],
      ["check-in", () => svc.checkin(out.token, out.lease.id, by(other.caller))],
      // A bound lease used over no connection at all: fail closed.
      ["unattested", () => svc.getOwn(out.token, out.lease.id, by())],
    ];
    for (const [what, use] of uses) {
      const err = await refusal(use());
      expect(err.code, what).toBe("caller_mismatch");
      expect(err.status, what).toBe(401);
    }
    const err = await refusal(svc.credential(out.token, out.lease.id, by(other.caller)));
    expect(err.message).toContain("bound to another local process");
    expect(err.message).toContain("uid");
    expect(err.message).not.toContain(out.token);

    // The lease is still the holder's.
    expect((await svc.getOwn(out.token, out.lease.id, by(self))).state).toBe("active");

    const records = (await auditRecords(lh)).filter(
      (r) => r.event === "caller_mismatch" && r.lease_id === out.lease.id,
    );
    expect(records.length).toBe(uses.length + 1);
    expect(records[0]).toMatchObject({
      scope: "uid",
      agent: A,
      resource: lh.resource,
      caller: { attested: true, uid: 65534, pid: other.pid, exe_sha256: other.caller.exe_sha256 },
      bound_caller: {
        attested: true,
        uid: self.uid,
        pid: process.pid,
        exe_sha256: self.exe_sha256,
        cgroup: self.cgroup,
      },
    });
    expect(records.find((r) => r.request_id && (r.caller as Rec).attested === false)).toMatchObject({
      scope: "unattested",
      caller: { attested: false },
    });
    expect(await metricValue(lh, series)).toBe(before + uses.length);
    // The lease event stream (SSE, webhook, `leases watch`) carries it.
    const entries = (await redis.xrange(`${lh.redisPrefix}events`, "-", "+")) as Array<[string, string[]]>;
    const announced = entries.map(([, f]) => f.join(" ")).filter((f) => f.includes("caller_mismatch"));
    expect(announced.some((f) => f.includes(out.lease.id) && f.includes("uid differs (refused)"))).toBe(true);

    await svc.checkin(out.token, out.lease.id, by(self));
    await waitFor("the account to be available", async () => (await accountState(lh)) === "available");
  });

  it("refuses the same uid running another executable (exe binding)", async () => {
    const out = await checkout(lh, self);
    const sleeper = await start("sleep", ["300"]);
    expect(sleeper.caller.uid).toBe(self.uid);
    const err = await refusal(svc.credential(out.token, out.lease.id, by(sleeper.caller)));
    expect(err.code).toBe("caller_mismatch");
    expect(err.message).toContain("executable");
    const rec = (await auditRecords(lh)).findLast(
      (r) => r.event === "caller_mismatch" && r.lease_id === out.lease.id,
    );
    expect(rec).toMatchObject({ scope: "exe", caller: { exe_sha256: sleeper.caller.exe_sha256 } });
    // Another node process of the same user is the same executable: it may.
    const node = await start(process.execPath, ["-e", "setTimeout(() => {}, 300000)"]);
    await svc.getOwn(out.token, out.lease.id, by(node.caller));
    await svc.checkin(out.token, out.lease.id, by(self));
    await waitFor("the account to be available", async () => (await accountState(lh)) === "available");
  });

  it("a bound lease is used on its own host only: another boot id is refused (scope host)", async () => {
    expect(self.boot_id).toMatch(/^[0-9a-f-]{36}$/);
    const out = await checkout(lh, self);
    const elsewhere: AttestedCaller = { ...self, boot_id: "00000000-0000-4000-8000-000000000000" };
    const err = await refusal(svc.getOwn(out.token, out.lease.id, by(elsewhere)));
    expect(err.code).toBe("caller_mismatch");
    expect(err.message).toContain("another host");
    const rec = (await auditRecords(lh)).findLast(
      (r) => r.event === "caller_mismatch" && r.lease_id === out.lease.id,
    );
    expect(rec).toMatchObject({ scope: "host" });
    // The same caller on the same host still may.
    await svc.getOwn(out.token, out.lease.id, by(self));
    await svc.checkin(out.token, out.lease.id, by(self));
    await waitFor("the account to be available", async () => (await accountState(lh)) === "available");
  });

  it("a lease checked out by an unattested caller is bound to nothing", async () => {
    const out = await checkout(lh, undefined);
    const other = await start("sleep", ["300"], { uid: 65534, gid: 65534 });
    await svc.getOwn(out.token, out.lease.id, by(other.caller));
    await svc.checkin(out.token, out.lease.id, by());
    await waitFor("the account to be available", async () => (await accountState(lh)) === "available");
  });

  it("the caller is under the lease MAC: editing it in Redis makes the lease invalid", async () => {
    const out = await checkout(lh, self);
    const other = await start("sleep", ["300"], { uid: 65534, gid: 65534 });
    const key = `${lh.redisPrefix}{r:${lh.resource}}:lease:${out.lease.id}`;
    const json = JSON.parse((await redis.hget(key, "json")) as string) as Rec;
    expect(json.caller).toMatchObject({ attested: true, uid: self.uid, pid: process.pid });
    // A Redis writer rebinds the lease to its own process.
    await redis.hset(
      key,
      "json",
      JSON.stringify({ ...json, caller: { ...(json.caller as Rec), uid: 65534 } }),
    );
    const err = await refusal(svc.getOwn(out.token, out.lease.id, by(other.caller)));
    expect(err.code).toBe("unauthenticated");
    expect(err.message).toContain("integrity");
    // ... or unbinds it.
    await redis.hset(key, "json", JSON.stringify({ ...json, caller: { attested: false } }));
    expect((await refusal(svc.getOwn(out.token, out.lease.id, by(other.caller)))).message).toContain(
      "integrity",
    );
    await redis.hset(key, "json", JSON.stringify(json));
    await svc.checkin(out.token, out.lease.id, by(self));
    await waitFor("the account to be available", async () => (await accountState(lh)) === "available");
  });

  it("a Cedar rule on context.caller.exe_sha256 allows one binary and denies another for the same agent key", async () => {
    const sleeper = await start("sleep", ["300"]);
    const denied = await refusal(checkout(lh, sleeper.caller, "b"));
    expect(denied.code).toBe("policy_denied");
    expect((await refusal(checkout(lh, undefined, "b"))).code).toBe("policy_denied");
    const out = await checkout(lh, self, "b");
    expect(out.lease.agent).toBe(B);
    const decision = (await auditRecords(lh)).findLast(
      (r) => r.event === "decision" && r.scope === "checkout" && r.agent === B && r.decision === "deny",
    );
    expect(decision?.policies).toEqual(["b-only-from-node"]);
    await svc.checkin(out.token, out.lease.id, by(self));
    await waitFor("the account to be available", async () => (await accountState(lh)) === "available");
  });
});

describe("allowedCallers: an agent key pinned to local callers", () => {
  let lh: InProcessSidecar;
  const C = "spiffe://example.org/agent/c";
  let keyFile: string;

  /** Rewrites agent c's entry in the trust bundle with these `allowedCallers`. */
  async function pin(allowedCallers: unknown): Promise<void> {
    const bundle = join(lh.dir, "trust", "agents.jwks.json");
    const doc = JSON.parse(await readFile(bundle, "utf8")) as { keys: Rec[] };
    for (const k of doc.keys) if (k.sub === C) k.allowedCallers = allowedCallers;
    await writeFile(bundle, JSON.stringify(doc, null, 2));
  }

  const checkoutAsC = async (caller: CallerAttestation | undefined) =>
    (await lh.sidecar.leaseService.checkout(
      await mintIdentityAssertion({ keyFile, audience: "leasehold", ttlSeconds: 60 }),
      { resource: lh.resource, task: { id: "T-pin" }, intent: { action: "read" }, ttl: 120 },
      by(caller),
    )) as CheckoutOk;

  beforeAll(async () => {
    lh = await boot({ identity: { trust: TRUST } });
    keyFile = (await generateAgentKey({ id: C, outDir: join(lh.dir, "trust") })).keyFile;
  });
  afterAll(async () => {
    await lh?.close();
  });

  it("a pinned key checks out only from a matching caller; others and unattested callers are refused and audited", async () => {
    await pin([{ uid: self.uid, exe_sha256: self.exe_sha256 }, { cgroup: "/nowhere.slice" }]);
    const sleeper = await start("sleep", ["300"]);
    const refused = await refusal(checkoutAsC(sleeper.caller));
    expect(refused.code).toBe("unauthenticated");
    expect(refused.message).toContain("allowedCallers");
    expect((await refusal(checkoutAsC(undefined))).message).toContain("could not be attested");
    const denied = (await auditRecords(lh)).filter((r) => r.scope === "caller_pin");
    expect(denied[0]).toMatchObject({
      event: "decision",
      decision: "deny",
      agent: C,
      resource: lh.resource,
      caller: { attested: true, pid: sleeper.pid, exe_sha256: sleeper.caller.exe_sha256 },
    });
    expect(denied[1]).toMatchObject({ caller: { attested: false } });

    const out = await checkoutAsC(self);
    expect(out.lease.agent).toBe(C);
    await lh.sidecar.leaseService.checkin(out.token, out.lease.id, by(self));
    await waitFor("the account to be available", async () => (await accountState(lh)) === "available");
  });

  it("a pinned delegator's token exchange is made only from a matching caller (HTTP over TCP, and inject)", async () => {
    await pin([{ uid: self.uid, exe_sha256: self.exe_sha256 }]);
    const exchange = async () => ({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      subject_token: await mintIdentityAssertion({ keyFile, audience: "leasehold", ttlSeconds: 60 }),
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      audience: "spiffe://example.org/agent/a",
    });
    // fastify's inject has no connection: never a pinned key's caller.
    const injected = await lh.sidecar.app.inject({
      method: "POST",
      url: "/v1/token-exchange",
      headers: { "x-leasehold-request": "true" },
      payload: await exchange(),
    });
    expect(injected.statusCode).toBe(401);
    expect(injected.body).toContain("allowedCallers");
    expect(injected.body).not.toContain("access_token");
    // This process (node, this uid) over real TCP: the pin's caller.
    const base = await lh.listen();
    const res = await fetch(`${base}/v1/token-exchange`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-leasehold-request": "true" },
      body: JSON.stringify(await exchange()),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { access_token?: string }).access_token).toBeTruthy();
    const denied = (await auditRecords(lh)).filter((r) => r.scope === "caller_pin" && r.agent === C);
    expect(denied.at(-1)).toMatchObject({ decision: "deny", caller: { attested: false } });
  });

  it("an unusable allowedCallers member makes the key verify nothing", async () => {
    await pin([{ uid: "root" }]);
    expect((await refusal(checkoutAsC(self))).message).toContain("unusable");
    await pin([]);
    expect((await refusal(checkoutAsC(self))).message).toContain("unusable");
  });
});

describe("bindCaller [uid, process], onCallerMismatch revoke", () => {
  let lh: InProcessSidecar;
  let svc: LeaseService;

  beforeAll(async () => {
    lh = await boot({
      identity: { trust: TRUST, bindCaller: ["uid", "process"], onCallerMismatch: "revoke" },
    });
    svc = lh.sidecar.leaseService;
  });
  afterAll(async () => {
    await lh?.close();
  });

  it("the process that checked out and its descendants may use the lease; any other process ends it, and the password rotates", async () => {
    // The agent: a shell that runs a child (its `psql`).
    const agent = await start("sh", ["-c", "sleep 300; true"]);
    const childPid = await waitFor("the agent's child", async () => {
      const list = (await readFile(`/proc/${agent.pid}/task/${agent.pid}/children`, "utf8")).trim();
      return list === "" ? undefined : Number(list.split(" ")[0]);
    });
    grandchildren.push(childPid);
    const child = await attestPid(childPid);
    const out = await checkout(lh, agent.caller);

    await svc.getOwn(out.token, out.lease.id, by(agent.caller));
    const cred = await svc.proxyCredential(out.token, out.lease.id, lh.resource, by(child));
    expect(cred.password.length).toBeGreaterThanOrEqual(16);

    // The same uid, outside the agent's tree: this test process (the agent's parent).
    const err = await refusal(svc.proxyCredential(out.token, out.lease.id, lh.resource, by(self)));
    expect(err.code).toBe("caller_mismatch");
    expect(err.message).toContain("descendants");

    // The first mismatch revoked the lease: the holder too is now told so.
    expect((await refusal(svc.getOwn(out.token, out.lease.id, by(agent.caller)))).code).toBe("lease_revoked");
    const records = (await auditRecords(lh)).filter((r) => r.lease_id === out.lease.id);
    expect(records.find((r) => r.event === "caller_mismatch")).toMatchObject({
      scope: "process",
      caller: { pid: process.pid },
      bound_caller: { pid: agent.pid, start_time: agent.caller.start_time },
    });
    expect(records.find((r) => r.event === "revocation")).toMatchObject({
      reason: "caller mismatch: process",
    });
    // The rotation the revocation scheduled runs, and the password the lease saw is gone.
    await waitFor("the rotation after the revocation", async () =>
      (await auditRecords(lh)).some(
        (r) => r.event === "rotation_succeeded" && r.account === out.lease.account,
      ),
    );
    await waitFor("the account to be available", async () => (await accountState(lh)) === "available");
    const again = await checkout(lh, self);
    const next = await svc.credential(again.token, again.lease.id, by(self));
    expect(next.password).not.toBe(cred.password);
    await svc.checkin(again.token, again.lease.id, by(self));
    await waitFor("the account to be available", async () => (await accountState(lh)) === "available");
  });

  it("a reused pid does not match: the start time names the process", async () => {
    const agent = await start("sleep", ["300"]);
    const out = await checkout(lh, agent.caller);
    const impostor = { ...agent.caller, start_time: String(Number(agent.caller.start_time) + 1) };
    expect((await refusal(svc.getOwn(out.token, out.lease.id, by(impostor)))).code).toBe("caller_mismatch");
    await waitFor("the account to be available", async () => (await accountState(lh)) === "available");
  });
});
