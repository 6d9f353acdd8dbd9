import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseEventChannel } from "../../sidecar/events/index.js";
import { type LeaseRecord, LeaseStore } from "../../sidecar/leases/index.js";
import { createLogger } from "../../sidecar/logger.js";
import { ExpiryNotifier } from "../../sidecar/ops/expiry-notifier.js";
import { createMetrics } from "../../sidecar/ops/index.js";
import { WEBHOOK_GROUP, WebhookDispatcher } from "../../sidecar/ops/webhook.js";
import { verifyWebhookSignature, WEBHOOK_HEADERS } from "../../sidecar/ops/webhook-signature.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { waitFor } from "../support/wait-for.js";

const log = createLogger("silent");
const SECRET = "webhook-test-secret-0123456789";
let redis: Redis;
const prefixes: string[] = [];

beforeAll(() => {
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  await Promise.all(prefixes.map((p) => dropPrefix(p)));
  redis.disconnect();
});

function newPrefix(name: string): string {
  const p = testPrefix(name);
  prefixes.push(p);
  return p;
}

async function eventsOfType(prefix: string, type: string): Promise<Array<Record<string, string>>> {
  const all = (await redis.xrange(`${prefix}events`, "-", "+")) as Array<[string, string[]]>;
  return all
    .map(([, f]) => Object.fromEntries(f.flatMap((v, i) => (i % 2 === 0 ? [[v, f[i + 1] ?? ""]] : []))))
    .filter((e) => e.type === type);
}

describe("expiring_soon notices", () => {
  it("are emitted once per lease and expiry, even by two sidecars at once, and not early in a lease's life", async () => {
    const prefix = newPrefix("ops-expiring");
    const store = new LeaseStore({ redis, prefix });
    await store.syncPool("orders-db", ["a1", "a2"], "available");
    const spec = (id: string) => ({
      id,
      resource: "orders-db",
      agent: "spiffe://example.org/agent/a",
      task: { id: "T" },
      intent: { action: "read" },
    });
    const short = await store.checkout(spec("lse_expiring_short"), 1200, 60_000);
    const long = await store.checkout(spec("lse_expiring_long1"), 600_000, 600_000);
    expect(short.ok && long.ok).toBe(true);
    if (!short.ok) throw new Error("checkout failed");
    const metrics = createMetrics({ processMetrics: false });
    // The notifiers read a clock the test holds (lease times are on Redis' clock, so it starts
    // from the lease's own issued_at): no pass can miss the short lease's last 600 ms.
    const clock = { t: short.lease.issued_at + 100 };
    // Both notifiers publish through one channel, as the sidecar's would: the stream, and the metrics.
    const events = new LeaseEventChannel({ redis, prefix, log });
    events.subscribe((e) => metrics.observeLeaseEvent(e));
    const make = () =>
      new ExpiryNotifier({
        leases: store,
        events,
        redis,
        prefix,
        leadSeconds: 60,
        log,
        now: () => clock.t,
      });
    const [n1, n2] = [make(), make()];
    await Promise.all([n1.runOnce(), n2.runOnce()]);
    expect(await eventsOfType(prefix, "expiring_soon")).toEqual([]);
    clock.t = short.lease.expires_at - 300;
    await Promise.all([n1.runOnce(), n2.runOnce()]);
    await Promise.all([n1.runOnce(), n2.runOnce(), n1.runOnce()]);
    const notices = await eventsOfType(prefix, "expiring_soon");
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({
      resource: "orders-db",
      lease_id: "lse_expiring_short",
      agent: "spiffe://example.org/agent/a",
    });
    expect(notices[0]?.reason).toMatch(/^expires in \d+s$/);
    // The ten-minute lease is far from its last minute: no notice.
    expect(notices.some((e) => e.lease_id === "lse_expiring_long1")).toBe(false);
    expect((await metrics.render()).body).toMatch(
      /leasehold_expiring_soon_total\{resource="orders-db"\} 1\n/,
    );
  });
});

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

async function receiver(
  respond: (n: number) => number,
): Promise<{ server: Server; url: string; got: Received[] }> {
  const got: Received[] = [];
  let n = 0;
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => {
      body += d.toString();
    });
    req.on("end", () => {
      const status = respond(n++);
      if (status < 300) got.push({ headers: req.headers, body });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return { server, url: `http://127.0.0.1:${port}/hook`, got };
}

describe("the alert webhook", () => {
  it("posts each alert event once across two sidecars, signed, and skips other event types", async () => {
    const prefix = newPrefix("ops-webhook");
    const events = new LeaseEventChannel({ redis, prefix, log });
    // The first answer is a 500: the delivery is retried.
    const hook = await receiver((n) => (n === 0 ? 500 : 204));
    const metrics = createMetrics({ processMetrics: false });
    const make = (consumer: string) =>
      new WebhookDispatcher({
        connect: () => new Redis(REDIS_URL, { maxRetriesPerRequest: null }),
        prefix,
        url: hook.url,
        secret: SECRET,
        consumer,
        blockMs: 200,
        retryDelayMs: 20,
        log,
        metrics,
      });
    const sidecars = [make("sidecar-1"), make("sidecar-2")];
    try {
      for (const s of sidecars) s.start();
      // The group is created at the stream's end: wait until both consumers joined it.
      await waitFor("the webhook consumer group on the event stream", async () => {
        const groups = (await redis.xinfo("GROUPS", `${prefix}events`).catch(() => [])) as unknown[];
        return groups.length > 0;
      });
      const lease = (id: string, account: string): LeaseRecord => ({
        id,
        resource: "orders-db",
        account,
        agent: "x",
        task: { id: "T-1" },
        intent: { action: "read" },
        state: "active",
        issued_at: 0,
        expires_at: 60_000,
        max_expires_at: 60_000,
      });
      await events.publish({ type: "issued", lease: lease("lse_1", "a1") });
      await events.publish({
        type: "rotation_failed",
        resource: "orders-db",
        account: "a1",
        reason: "timeout",
      });
      await events.publish({ type: "quarantined", resource: "orders-db", account: "a1", reason: "timeout" });
      await events.publish({ type: "expiring_soon", lease: lease("lse_2", "a2"), seconds_left: 30 });
      await events.publish({ type: "rotated", resource: "orders-db", account: "a2" });
      // Every event delivered to the group and acknowledged: nothing is left to be posted.
      await waitFor("every event delivered and acknowledged, three posts received", async () => {
        const pending = (await redis.xpending(`${prefix}events`, WEBHOOK_GROUP)) as [number, ...unknown[]];
        const info = (await redis.xinfo("GROUPS", `${prefix}events`)) as Array<Array<string | number>>;
        const lastDelivered = info[0]?.[info[0].indexOf("last-delivered-id") + 1];
        const tail = (await redis.xrevrange(`${prefix}events`, "+", "-", "COUNT", 1))[0]?.[0];
        return pending[0] === 0 && lastDelivered === tail && hook.got.length >= 3;
      });
    } finally {
      await Promise.all(sidecars.map((s) => s.stop()));
      hook.server.close();
    }
    const bodies = hook.got.map((g) => JSON.parse(g.body) as { id: string; type: string; reason?: string });
    expect(bodies.map((b) => b.type).sort()).toEqual(["expiring_soon", "quarantined", "rotation_failed"]);
    expect(new Set(bodies.map((b) => b.id)).size).toBe(3);
    expect(bodies.find((b) => b.type === "quarantined")?.reason).toBe("timeout");
    for (const g of hook.got) {
      const ts = g.headers[WEBHOOK_HEADERS.timestamp] as string;
      const sig = g.headers[WEBHOOK_HEADERS.signature] as string;
      expect(sig).toMatch(/^sha256=[0-9a-f]{64}$/);
      expect(g.headers[WEBHOOK_HEADERS.event]).toBe(JSON.parse(g.body).type);
      expect(verifyWebhookSignature(SECRET, g.body, ts, sig)).toBe(true);
      expect(verifyWebhookSignature("another-secret-0123456789", g.body, ts, sig)).toBe(false);
      expect(verifyWebhookSignature(SECRET, `${g.body} `, ts, sig)).toBe(false);
      expect(verifyWebhookSignature(SECRET, g.body, ts, sig, Number(ts) + 3600)).toBe(false);
    }
    const text = (await metrics.render()).body;
    expect(text).toMatch(/leasehold_webhook_deliveries_total\{result="delivered"\} 3/);
  });

  it("refuses a non-http URL and a short secret", () => {
    const base = { connect: () => redis, prefix: "x:", consumer: "c", log };
    expect(() => new WebhookDispatcher({ ...base, url: "file:///etc/passwd", secret: SECRET })).toThrow(
      /url/,
    );
    expect(() => new WebhookDispatcher({ ...base, url: "http://127.0.0.1/", secret: "short" })).toThrow(
      /secret/,
    );
  });
});
