import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseEventChannel } from "../../sidecar/events/index.js";
import { type LeaseRecord, LeaseStore } from "../../sidecar/leases/index.js";
import { createLogger } from "../../sidecar/logger.js";
import { ExpiryNotifier } from "../../sidecar/ops/expiry-notifier.js";
import { createMetrics } from "../../sidecar/ops/index.js";
import { WEBHOOK_GROUP, WebhookDispatcher } from "../../sidecar/ops/webhook.js";
import { signWebhook, webhookKey } from "../../sidecar/ops/webhook-signature.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { waitFor } from "../support/wait-for.js";

const log = createLogger("silent");
/** A secret in the Standard Webhooks form, as a receiver's library takes it. */
const SECRET = `whsec_${randomBytes(32).toString("base64")}`;

/**
 * A receiver's check written from the Standard Webhooks specification (what its stock libraries
 * do), not from the sender's code: the key is the base64 after `whsec_`; the signed content is
 * `<webhook-id>.<webhook-timestamp>.<body>`; `webhook-signature` is a space-separated list of
 * `v1,<base64 HMAC-SHA256>`, any one matching in constant time; the timestamp within 5 minutes.
 */
function verifyStandardWebhook(
  secret: string,
  headers: IncomingHttpHeaders,
  body: string,
  nowSeconds = Math.floor(Date.now() / 1000),
): boolean {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (typeof id !== "string" || typeof timestamp !== "string" || typeof signatures !== "string") return false;
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > 300) return false;
  const key = Buffer.from(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret, "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest();
  return signatures.split(" ").some((entry) => {
    const [version, value] = entry.split(",");
    const got = Buffer.from(value ?? "", "base64");
    return version === "v1" && got.length === expected.length && timingSafeEqual(got, expected);
  });
}

/** What a receiver of version 0.1 checked: `x-leasehold-signature`, hex HMAC of `<timestamp>.<body>` keyed by the secret string. */
function verifyLegacyWebhook(secret: string, headers: IncomingHttpHeaders, body: string): boolean {
  const ts = headers["x-leasehold-timestamp"];
  const want = `sha256=${createHmac("sha256", secret)
    .update(`${String(ts)}.${body}`)
    .digest("hex")}`;
  return headers["x-leasehold-signature"] === want;
}
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
      const body = JSON.parse(g.body) as { id: string; type: string };
      expect(g.headers["webhook-id"]).toBe(body.id);
      expect(g.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
      expect(verifyStandardWebhook(SECRET, g.headers, g.body)).toBe(true);
      const other = `whsec_${randomBytes(32).toString("base64")}`;
      expect(verifyStandardWebhook(other, g.headers, g.body)).toBe(false);
      expect(verifyStandardWebhook(SECRET, g.headers, `${g.body} `)).toBe(false);
      expect(verifyStandardWebhook(SECRET, { ...g.headers, "webhook-id": "1-0" }, g.body)).toBe(false);
      const late = Number(g.headers["webhook-timestamp"]) + 3600;
      expect(verifyStandardWebhook(SECRET, g.headers, g.body, late)).toBe(false);
      // The headers of version 0.1 are still sent, for one version.
      expect(g.headers["x-leasehold-event"]).toBe(body.type);
      expect(g.headers["x-leasehold-event-id"]).toBe(body.id);
      expect(verifyLegacyWebhook(SECRET, g.headers, g.body)).toBe(true);
    }
    const text = (await metrics.render()).body;
    expect(text).toMatch(/leasehold_webhook_deliveries_total\{result="delivered"\} 3/);
  });

  it("signs as the Standard Webhooks reference libraries do (their published test vector)", () => {
    // The test vector of the specification's reference libraries.
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const body = '{"test": 2432232314}';
    const signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    expect(signWebhook(webhookKey(secret), id, 1614265330, body)).toBe(signature);
    const headers = { "webhook-id": id, "webhook-timestamp": "1614265330", "webhook-signature": signature };
    expect(verifyStandardWebhook(secret, headers, body, 1614265330)).toBe(true);
    // A list of signatures (a receiver during key rotation): any one matching is enough.
    const two = { ...headers, "webhook-signature": `v1,${Buffer.alloc(32).toString("base64")} ${signature}` };
    expect(verifyStandardWebhook(secret, two, body, 1614265330)).toBe(true);
  });

  it("with a plain secret, a stock receiver verifies with whsec_ and the secret in base64", async () => {
    const plain = "a-plain-webhook-secret-0123456789";
    const hook = await receiver(() => 204);
    try {
      const dispatcher = new WebhookDispatcher({
        connect: () => redis,
        prefix: "unused:",
        url: hook.url,
        secret: plain,
        consumer: "c",
        log,
      });
      const event = {
        id: "1700000000000-0",
        time: new Date().toISOString(),
        type: "quarantined",
        resource: "db",
      };
      expect(await dispatcher.deliver(event)).toBe(true);
    } finally {
      hook.server.close();
    }
    const [g] = hook.got;
    if (!g) throw new Error("nothing delivered");
    expect(verifyStandardWebhook(`whsec_${Buffer.from(plain).toString("base64")}`, g.headers, g.body)).toBe(
      true,
    );
    expect(verifyLegacyWebhook(plain, g.headers, g.body)).toBe(true);
  });

  it("refuses a non-http URL and a short secret", () => {
    const base = { connect: () => redis, prefix: "x:", consumer: "c", log };
    expect(() => new WebhookDispatcher({ ...base, url: "file:///etc/passwd", secret: SECRET })).toThrow(
      /url/,
    );
    expect(() => new WebhookDispatcher({ ...base, url: "http://127.0.0.1/", secret: "short" })).toThrow(
      /secret/,
    );
    // A whsec_ secret must be base64 of at least 24 bytes (the specification asks for 24 to 64).
    for (const secret of [`whsec_${randomBytes(16).toString("base64")}`, "whsec_not*base64*at*all!!"]) {
      expect(() => new WebhookDispatcher({ ...base, url: "http://127.0.0.1/", secret })).toThrow(
        /^webhook secret: /,
      );
    }
  });
});
