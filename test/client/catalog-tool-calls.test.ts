import { randomBytes } from "node:crypto";
import { link, mkdtemp, readFile, rename, symlink } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import type { Connection } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, LeaseholdClientError } from "../../sidecar/client/index.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { type PrivateRedis, startPrivateRedis } from "../proxy/redis-server.js";
import { createMariadbAccount, dropMariadbAccount, mariadbRoot } from "../support/mariadb.js";
import { REDIS_URL } from "../support/redis.js";
import { useVault, type VaultHandle } from "../support/vault.js";
import { waitFor } from "../support/wait-for.js";

const A = "spiffe://example.org/agent/a";
const B = "spiffe://example.org/agent/b";
// a may read what is in `reports`; b may check out what is in `approvals`, with a human's
// approval; anyone may check out what is in `open`; nobody what is in `secret`.
const POLICY = `
@id("a-reads-reports")
permit (principal == Agent::"${A}", action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"], resource in ResourceGroup::"reports")
when { context.intent == "read" && context.ttl <= 600 };

@id("b-with-approval")
permit (principal == Agent::"${B}", action == Action::"checkout", resource in ResourceGroup::"approvals")
when { context.approved };

@id("anyone-open")
permit (principal, action == Action::"checkout", resource in ResourceGroup::"open");

@id("never-secret")
forbid (principal, action, resource in ResourceGroup::"secret");
`;

type Json = Record<string, unknown>;

/**
 * The agent's catalog (`GET /v1/catalog`, filtered by policy's partial evaluation), tool calls
 * with and without a lease carrying their client's name, and the SDK's `resources`,
 * `reportToolCall`, `LeaseHandle.status` and `onPoll`, against a real sidecar (Vault, Redis,
 * MariaDB).
 */
describe("the agent's catalog and its tool calls", () => {
  let vault: VaultHandle;
  let lh: InProcessSidecar;
  let root: Connection;
  let url: string;
  const tag = randomBytes(3).toString("hex");
  const extra = {
    approvals: `lhcat_y_${tag}`,
    open: `lhcat_o_${tag}`,
    secret: `lhcat_s_${tag}`,
    none: `lhcat_n_${tag}`,
    late: `lhcat_l_${tag}`,
  };
  const passwords: Record<string, string> = {};
  const names = {
    reports: "",
    approvals: `cat-approvals-${tag}`,
    open: `cat-open-${tag}`,
    secret: `cat-secret-${tag}`,
    none: `cat-none-${tag}`,
    /** A Redis (ACL) resource whose password is never revealed, with a listener on this sidecar. */
    cache: `cat-cache-${tag}`,
  };
  let redisTarget: PrivateRedis;
  const admin = () => ({
    authorization: `Bearer ${lh.sidecar.adminToken}`,
    "content-type": "application/json",
  });
  const register = async (registration: Json) => {
    const res = await lh.sidecar.app.inject({
      method: "PUT",
      url: `/v1/resources/${String(registration.name)}`,
      headers: admin(),
      payload: JSON.stringify(registration),
    });
    expect(res.statusCode, res.body).toBe(201);
  };
  const catalog = async (token: string | undefined) =>
    lh.sidecar.app.inject({
      method: "GET",
      url: "/v1/catalog",
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    });
  const toolCall = async (token: string, body: unknown) =>
    lh.sidecar.app.inject({
      method: "POST",
      url: "/v1/tool-calls",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      payload: JSON.stringify(body),
    });
  const audit = async (): Promise<Json[]> =>
    (await readFile(join(lh.dir, "state", "audit.jsonl"), "utf8"))
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as Json);

  beforeAll(async () => {
    vault = await useVault();
    lh = await startInProcessSidecar({
      vault,
      policy: POLICY,
      config: { limits: { checkoutsPerMinute: 40, toolCallsPerMinute: 40, catalogReadsPerMinute: 25 } },
    });
    url = await lh.listen();
    root = await mariadbRoot();
    for (const account of Object.values(extra)) {
      passwords[account] = randomBytes(18).toString("base64url");
      await createMariadbAccount(root, account, passwords[account]);
    }
    names.reports = lh.resource;
    const base = lh.registration;
    await register({
      ...base,
      description: "Orders, read-only copy for reports",
      groups: ["reports"],
    });
    const more = (name: string, account: string, groups: string[], rest: Json = {}) =>
      register({
        ...base,
        name,
        accounts: [{ name: account, password: passwords[account] }],
        importRotation: false,
        groups,
        ...rest,
      });
    await more(names.approvals, extra.approvals, ["approvals"], { reveal: false });
    await more(names.open, extra.open, ["open"]);
    await more(names.secret, extra.secret, ["open", "secret"]);
    await more(names.none, extra.none, []);
    const redisAdmin = randomBytes(18).toString("hex");
    redisTarget = await startPrivateRedis(
      ["lhcat_admin", "lhcat_r1"].map(
        (u) => `${u} on >${u === "lhcat_admin" ? redisAdmin : randomBytes(12).toString("hex")} ~* &* +@all`,
      ),
    );
    await register({
      name: names.cache,
      adapter: "redis-acl",
      connection: { host: redisTarget.host, port: redisTarget.port },
      admin: { username: "lhcat_admin", password: redisAdmin },
      accounts: ["lhcat_r1"],
      reveal: false,
      rotation: { terminateSessions: false },
      proxy: { port: 0 },
      groups: ["approvals"],
      lease: { defaultTtl: 120, maxTtl: 600 },
    });
    await waitFor("the cache resource's listener", async () => lh.sidecar.proxies.endpointFor(names.cache));
  }, 90_000);
  afterAll(async () => {
    await lh?.close();
    await redisTarget?.stop();
    if (root) {
      for (const account of Object.values(extra))
        await dropMariadbAccount(root, account).catch(() => undefined);
      await root.end();
    }
    await vault?.close();
  });

  it("lists what policy could allow each agent: no forbidden, no unpermitted resource; approvals shown", async () => {
    const forA = await catalog(await lh.identity("a"));
    expect(forA.statusCode, forA.body).toBe(200);
    expect(forA.json()).toEqual({
      resources: [
        { name: names.open, adapter: "mysql", groups: ["open"], session: "credential" },
        {
          name: names.reports,
          adapter: "mysql",
          description: "Orders, read-only copy for reports",
          groups: ["reports"],
          session: "credential",
        },
      ].sort((x, y) => x.name.localeCompare(y.name)),
    });
    const forB = await catalog(await lh.identity("b"));
    expect(forB.statusCode, forB.body).toBe(200);
    // b's resources need a human's approval: listed. The Redis one is used through this
    // sidecar's listener; the MySQL one's password is never revealed and no listener runs for
    // it here, so there is nothing b could use: not listed.
    expect(forB.json()).toEqual({
      resources: [
        { name: names.cache, adapter: "redis-acl", groups: ["approvals"], session: "proxy" },
        { name: names.open, adapter: "mysql", groups: ["open"], session: "credential" },
      ].sort((x, y) => x.name.localeCompare(y.name)),
    });
    // The DBA's description is in the resource's own view too.
    const shown = await lh.sidecar.app.inject({
      method: "GET",
      url: `/v1/resources/${names.reports}`,
      headers: admin(),
    });
    expect(shown.json()).toMatchObject({ description: "Orders, read-only copy for reports" });
  });

  it("follows the policy file when it is reloaded (nothing cached)", async () => {
    const file = join(lh.dir, "policy.cedar");
    const before = await readFile(file, "utf8");
    try {
      await import("node:fs/promises").then((fs) =>
        fs.writeFile(
          file,
          `${before}\n@id("no-open-for-a")\nforbid (principal == Agent::"${A}", action, resource in ResourceGroup::"open");\n`,
        ),
      );
      expect(await lh.sidecar.reloadPolicy()).toEqual({ ok: true });
      const forA = (await catalog(await lh.identity("a"))).json() as { resources: Array<{ name: string }> };
      expect(forA.resources.map((r) => r.name)).toEqual([names.reports]);
    } finally {
      await import("node:fs/promises").then((fs) => fs.writeFile(file, before));
      expect(await lh.sidecar.reloadPolicy()).toEqual({ ok: true });
    }
  });

  it("narrows to a delegation's scope, and the tool call records the delegation chain", async () => {
    const exchanged = await lh.sidecar.app.inject({
      method: "POST",
      url: "/v1/token-exchange",
      headers: { "content-type": "application/json" },
      payload: JSON.stringify({
        grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
        subject_token: await lh.identity("b"),
        subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
        audience: A,
        scope: names.reports,
      }),
    });
    expect(exchanged.statusCode, exchanged.body).toBe(200);
    const delegation = String((exchanged.json() as { access_token: string }).access_token);
    const listed = async () =>
      lh.sidecar.app.inject({
        method: "GET",
        url: "/v1/catalog",
        headers: { authorization: `Bearer ${await lh.identity("a")}`, "x-leasehold-delegation": delegation },
      });
    // A read does not spend the one-time delegation token either.
    expect((await listed()).statusCode).toBe(200);
    const res = await listed();
    expect(res.statusCode, res.body).toBe(200);
    // a could also check out the open resource, but the delegation names only the reports one.
    expect((res.json() as { resources: Array<{ name: string }> }).resources.map((r) => r.name)).toEqual([
      names.reports,
    ]);
    const call = await lh.sidecar.app.inject({
      method: "POST",
      url: "/v1/tool-calls",
      headers: {
        authorization: `Bearer ${await lh.identity("a")}`,
        "x-leasehold-delegation": delegation,
        "content-type": "application/json",
      },
      payload: JSON.stringify({ tool: "list_resources", action: "list" }),
    });
    expect(call.statusCode, call.body).toBe(202);
    const record = (await audit()).find((r) => r.request_id === call.headers["x-request-id"]);
    expect(record).toMatchObject({ event: "tool_call", agent: A, agent_chain: [B] });
    // The tool call spent it: even a read is refused with it now.
    expect((await listed()).statusCode).toBe(401);
  });

  it("wants a valid identity, and does not spend its one-time jti", async () => {
    expect((await catalog(undefined)).statusCode).toBe(401);
    expect((await catalog("not-a-jwt")).statusCode).toBe(401);
    expect((await catalog(lh.sidecar.adminToken)).statusCode).toBe(401);
    const jwt = await lh.identity("a");
    expect((await catalog(jwt)).statusCode).toBe(200);
    expect((await catalog(jwt)).statusCode).toBe(200);
    // A tool call spends it: the same JWT is refused afterwards.
    expect((await toolCall(jwt, { tool: "list_resources", action: "list" })).statusCode).toBe(202);
    const replay = await toolCall(jwt, { tool: "list_resources", action: "list" });
    expect(replay.statusCode).toBe(401);
  });

  it("records a tool call without a lease, and refuses a bad body naming the field", async () => {
    const res = await toolCall(await lh.identity("b"), {
      tool: "list_resources",
      action: "list",
      target: "catalog",
      digest: "a".repeat(64),
      client: "claude-desktop 1.2",
    });
    expect(res.statusCode, res.body).toBe(202);
    const requestId = res.headers["x-request-id"];
    const record = (await audit()).find((r) => r.request_id === requestId);
    expect(record).toMatchObject({
      event: "tool_call",
      scope: "tool_call",
      agent: B,
      agent_chain: [],
      trust_kind: "agents",
      tool: "list_resources",
      intent: "list",
      target: "catalog",
      digest: "a".repeat(64),
      client: "claude-desktop 1.2",
    });
    expect(record).not.toHaveProperty("lease_id");
    expect(record).not.toHaveProperty("resource");

    const bad: Array<[unknown, string]> = [
      [{ action: "list" }, "body.tool"],
      [{ tool: "x", action: "list", client: "c".repeat(129) }, "body.client"],
      [{ tool: "x", action: "list", client: "bad\u0007bell" }, "body.client"],
      [{ tool: "x", action: "list", digest: "nope" }, "body.digest"],
      [{ tool: "x", action: "list", lease: "lse_x" }, "lease"],
    ];
    for (const [body, field] of bad) {
      const r = await toolCall(await lh.identity("b"), body);
      expect(r.statusCode, JSON.stringify(body)).toBe(400);
      expect((r.json() as { error: { code: string; message: string } }).error).toMatchObject({
        code: "invalid_request",
        message: expect.stringContaining(field),
      });
    }
  });

  it("the SDK: resources, reportToolCall, a lease's status and tool calls with the client's name", async () => {
    const client = createClient({ url, keyFile: lh.keyFile("a") });
    const listed = await client.resources();
    expect(listed.map((r) => r.name)).toEqual([names.open, names.reports].sort());
    expect(listed.find((r) => r.name === names.reports)).toMatchObject({
      adapter: "mysql",
      description: "Orders, read-only copy for reports",
      session: "credential",
    });
    await client.reportToolCall({ tool: "list_resources", action: "list", client: "sdk-test" });
    const refused = await client.reportToolCall({ tool: "", action: "list" }).then(
      () => expect.fail("an empty tool was accepted"),
      (e: unknown) => e as LeaseholdClientError,
    );
    expect(refused).toBeInstanceOf(LeaseholdClientError);
    expect(refused).toMatchObject({ code: "invalid_request", message: expect.stringContaining("body.tool") });

    // wait: the account's import rotation may still be putting it back.
    const lease = await client.checkout(names.reports, {
      task: { id: "T-cat" },
      intent: { action: "read", tool: "sql_query" },
      ttl: 120,
      wait: 60,
    });
    try {
      const seen = await lease.status();
      expect(seen).toMatchObject({ id: lease.lease.id, state: "active", resource: names.reports });
      expect(lease.lease).toEqual(seen);
      await lease.reportToolCall({ tool: "sql_query", action: "read", target: "orders", client: "sdk-test" });
    } finally {
      await lease.checkin();
    }
    const records = await audit();
    const leased = records.find((r) => r.event === "tool_call" && r.lease_id === lease.lease.id);
    expect(leased).toMatchObject({
      agent: A,
      tool: "sql_query",
      target: "orders",
      client: "sdk-test",
      task_id: "T-cat",
    });
    expect(
      records.some(
        (r) =>
          r.event === "tool_call" && r.agent === A && r.client === "sdk-test" && r.lease_id === undefined,
      ),
    ).toBe(true);
    // An ended lease's status is the refusal the lease token now gets.
    const ended = await lease.status().then(
      () => expect.fail("an ended lease answered its status"),
      (e: unknown) => e as LeaseholdClientError,
    );
    expect(ended).toBeInstanceOf(LeaseholdClientError);
    expect(ended.status).toBe(401);
  });

  it("the SDK reports each poll of a pending approval (onPoll) until an operator approves", async () => {
    const client = createClient({ url, keyFile: lh.keyFile("b"), approvalPollIntervalMs: 50 });
    const pending: string[] = [];
    const polls: Array<{ id: string; status: string }> = [];
    let approved: Promise<unknown> | undefined;
    const lease = await client.checkout(names.approvals, {
      task: { id: "T-approve" },
      intent: { action: "read" },
      ttl: 120,
      dpop: false,
      onPending: (a) => pending.push(a.id),
      onPoll: (a) => {
        polls.push(a);
        // Approve once the agent has polled twice: the progress was reported at each poll.
        if (polls.length === 2) {
          approved = lh.sidecar.app.inject({
            method: "POST",
            url: `/v1/approvals/${a.id}/approve`,
            headers: admin(),
            payload: JSON.stringify({ approver: "alice" }),
          });
        }
      },
    });
    try {
      await waitFor("the approval to be recorded", async () => approved !== undefined);
      expect(((await approved) as { statusCode: number }).statusCode).toBe(200);
      expect(pending).toHaveLength(1);
      expect(polls.length).toBeGreaterThanOrEqual(2);
      expect(polls.every((p) => p.id === pending[0] && p.status === "pending")).toBe(true);
      expect(lease.lease).toMatchObject({ resource: names.approvals, approver: "alice" });
    } finally {
      await lease.checkin();
    }
  });

  it("rate-limits tool calls without a lease per agent, apart from checkouts", async () => {
    let last = 0;
    for (let i = 0; i < 45 && last !== 429; i++) {
      last = (await toolCall(await lh.identity("a"), { tool: "noop", action: "list" })).statusCode;
    }
    expect(last).toBe(429);
    const limited = await toolCall(await lh.identity("a"), { tool: "noop", action: "list" });
    expect(limited.json()).toMatchObject({ error: { code: "rate_limited" } });
    expect(limited.headers["retry-after"]).toBeDefined();
    // b has a count of its own.
    expect((await toolCall(await lh.identity("b"), { tool: "noop", action: "list" })).statusCode).toBe(202);
  });
  it("redeems an approval for a resource with a listener: the poll's answer carries its proxy block", async () => {
    const jwt = () => lh.identity("b");
    const asked = await lh.sidecar.app.inject({
      method: "POST",
      url: "/v1/checkout",
      headers: { authorization: `Bearer ${await jwt()}`, "content-type": "application/json" },
      payload: JSON.stringify({ resource: names.cache, task: { id: "T-proxy" }, intent: { action: "read" } }),
    });
    expect(asked.statusCode, asked.body).toBe(202);
    const id = String((asked.json() as { approval: { id: string } }).approval.id);
    const approved = await lh.sidecar.app.inject({
      method: "POST",
      url: `/v1/approvals/${id}/approve`,
      headers: admin(),
      payload: JSON.stringify({ approver: "alice" }),
    });
    expect(approved.statusCode, approved.body).toBe(200);
    // The account's import rotation may still be putting it back: poll until the lease is issued.
    let seen = "";
    const answer = await waitFor(
      () => `the approval to be redeemed (last answer: ${seen})`,
      async () => {
        const res = await lh.sidecar.app.inject({
          method: "GET",
          url: `/v1/approvals/${id}`,
          headers: { authorization: `Bearer ${await jwt()}` },
        });
        seen = `${res.statusCode} ${res.body}`;
        const approval = (res.json() as { approval?: Json }).approval;
        return res.statusCode === 200 && approval?.lease !== undefined ? approval : undefined;
      },
    );
    const lease = answer.lease as { id: string };
    const ep = lh.sidecar.proxies.endpointFor(names.cache);
    expect(ep).toBeDefined();
    expect(answer).toMatchObject({
      token_type: "Bearer",
      lease: { resource: names.cache, approver: "alice" },
      proxy: { host: ep?.host, port: ep?.port, username: lease.id },
    });
    const ended = await lh.sidecar.app.inject({
      method: "DELETE",
      url: `/v1/leases/${lease.id}`,
      headers: { authorization: `Bearer ${String(answer.token)}` },
    });
    expect(ended.statusCode, ended.body).toBe(202);
  });

  it("a tool call without a lease is a record with no resource nor lease; /v1/audit?event=tool_call finds it", async () => {
    const res = await toolCall(await lh.identity("b"), {
      tool: "list_resources",
      action: "list",
      client: "audit-q",
    });
    expect(res.statusCode, res.body).toBe(202);
    const requestId = String(res.headers["x-request-id"]);
    const record = (await audit()).find((r) => r.request_id === requestId);
    // The agent, its chain and the call: no resource, account, lease or task (there is none).
    expect(
      Object.keys(record ?? {})
        .filter((k) => k !== "hmac")
        .sort(),
    ).toEqual([
      "agent",
      "agent_chain",
      "client",
      "event",
      "hash",
      "intent",
      "prev",
      "request_id",
      "scope",
      "seq",
      "sidecar",
      "time",
      "tool",
      "trust_kind",
    ]);
    const query = async (q: string) => {
      const r = await lh.sidecar.app.inject({ method: "GET", url: `/v1/audit?${q}`, headers: admin() });
      expect(r.statusCode, r.body).toBe(200);
      return (r.json() as { records: Json[] }).records;
    };
    const calls = await query(`event=tool_call&agent=${encodeURIComponent(B)}&limit=500`);
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.every((r) => r.event === "tool_call" && r.agent === B)).toBe(true);
    expect(calls.find((r) => r.request_id === requestId)).toMatchObject({
      tool: "list_resources",
      client: "audit-q",
    });
    // A resource filter keeps to the calls made with a lease on it: a call without one has no resource.
    const onReports = await query(`event=tool_call&resource=${names.reports}&limit=500`);
    expect(onReports.every((r) => r.resource === names.reports && typeof r.lease_id === "string")).toBe(true);
    expect(onReports.some((r) => r.request_id === requestId)).toBe(false);
  });

  it("overlapping loads of the registrations never expose a partial list, and listeners stay up", async () => {
    const everyName = Object.values(names).sort();
    const before = lh.sidecar.proxies.endpointFor(names.cache);
    expect(before).toBeDefined();
    const lists = Array.from({ length: 12 }, () =>
      lh.sidecar.resourceService.list().then((l) => l.resources.map((r) => r.name)),
    );
    const reconciled = lh.sidecar.reconciler.reconcileAll();
    // A registration runs syncProxies (the listeners follow the list it loads) while the loads run.
    const extraName = `cat-late-${tag}`;
    const late = register({
      ...lh.registration,
      name: extraName,
      accounts: [{ name: extra.late, password: passwords[extra.late] }],
      importRotation: false,
      groups: [],
    });
    const reads = Array.from({ length: 4 }, async () => (await catalog(await lh.identity("b"))).statusCode);
    for (const listed of await Promise.all(lists)) expect(listed).toEqual(expect.arrayContaining(everyName));
    await reconciled;
    await late;
    expect(await Promise.all(reads)).toEqual([200, 200, 200, 200]);
    // Never stopped: a listener restarted on port 0 would have another port.
    expect(lh.sidecar.proxies.endpointFor(names.cache)).toEqual(before);
    const after = await lh.sidecar.resourceService.list();
    expect(after.resources.map((r) => r.name)).toEqual(expect.arrayContaining(everyName));
  });

  it("counts catalog reads before checking a DPoP proof: a junk proof is audited only within the limit", async () => {
    const statuses: number[] = [];
    const ids: string[] = [];
    for (let i = 0; i < 40 && statuses.at(-1) !== 429; i++) {
      const res = await lh.sidecar.app.inject({
        method: "GET",
        url: "/v1/catalog",
        headers: { authorization: `Bearer ${await lh.identity("b")}`, dpop: "junk.proof.here" },
      });
      statuses.push(res.statusCode);
      ids.push(String(res.headers["x-request-id"]));
    }
    expect(statuses.at(-1)).toBe(429);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(25);
    const records = await audit();
    const refusedAt = ids.at(-1);
    expect(records.some((r) => r.request_id === refusedAt)).toBe(false);
    const dpopRefusals = records.filter((r) => r.scope === "dpop" && ids.includes(String(r.request_id)));
    expect(dpopRefusals.length).toBe(statuses.filter((s) => s === 401).length);
    // The limit is b's: a's catalog is still served.
    expect((await catalog(await lh.identity("a"))).statusCode).toBe(200);
  });

  it("tool calls without a lease: counted before the proof check; refused while fenced or the audit log is unwritable", async () => {
    const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    const key = `${lh.redisPrefix}cluster:id`;
    const id = await redis.get(key);
    try {
      expect(id).not.toBeNull();
      await redis.set(key, "lhc_someone-else");
      expect((await lh.sidecar.cluster.check()).status).toBe("cluster_mismatch");
      const fenced = await toolCall(await lh.identity("b"), { tool: "noop", action: "list" });
      expect(fenced.statusCode, fenced.body).toBe(503);
      expect(fenced.json()).toMatchObject({ error: { code: "upstream_unavailable" } });
    } finally {
      if (id !== null) await redis.set(key, id);
      await redis.quit();
    }
    expect((await lh.sidecar.cluster.check()).status).toBe("ok");

    const file = join(lh.dir, "state", "audit.jsonl");
    await link(file, `${file}.aside`);
    await symlink(await mkdtemp(join(lh.dir, "not-a-file-")), `${file}.link`);
    await rename(`${file}.link`, file);
    try {
      const refused = await waitFor("tool calls to be refused", async () => {
        const r = await toolCall(await lh.identity("b"), { tool: "noop", action: "list" });
        return r.statusCode === 503 ? r : undefined;
      });
      expect(refused.json()).toMatchObject({ error: { code: "upstream_unavailable" } });
    } finally {
      await rename(`${file}.aside`, file);
    }
    await waitFor("the audit log to recover", async () =>
      (await lh.sidecar.app.inject({ method: "GET", url: "/readyz" })).statusCode === 200 ? true : undefined,
    );

    // b's count: junk proofs are refused (and audited) until the limit, then 429 with no record.
    const statuses: number[] = [];
    let lastId = "";
    for (let i = 0; i < 45 && statuses.at(-1) !== 429; i++) {
      const res = await lh.sidecar.app.inject({
        method: "POST",
        url: "/v1/tool-calls",
        headers: {
          authorization: `Bearer ${await lh.identity("b")}`,
          dpop: "junk.proof.here",
          "content-type": "application/json",
        },
        payload: JSON.stringify({ tool: "noop", action: "list" }),
      });
      statuses.push(res.statusCode);
      lastId = String(res.headers["x-request-id"]);
    }
    expect(statuses.at(-1)).toBe(429);
    expect(new Set(statuses.slice(0, -1))).toEqual(new Set([401]));
    expect((await audit()).some((r) => r.request_id === lastId)).toBe(false);
  });
});
