import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeLease, type OpsHarness, startOpsHarness } from "./ops-harness.js";
import { openStream } from "./sse-client.js";
import { waitFor } from "../support/wait-for.js";

let h: OpsHarness;
const auth = () => ({ authorization: `Bearer ${h.adminToken}` });

beforeAll(async () => {
  h = await startOpsHarness("stream");
}, 60_000);

afterAll(async () => {
  await h?.close();
});

describe("GET /v1/leases/stream", () => {
  it("refuses a request without the admin token, in the documented error shape", async () => {
    const res = await fetch(`${h.url}/v1/leases/stream`);
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: { code: string; request_id: string } };
    expect(body.error.code).toBe("unauthenticated");
    expect(body.error.request_id).toMatch(/^req_/);
    const wrong = await fetch(`${h.url}/v1/leases/stream`, { headers: { authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);
  });

  it("rejects a malformed Last-Event-ID", async () => {
    const res = await fetch(`${h.url}/v1/leases/stream`, { headers: { ...auth(), "last-event-id": "x" } });
    expect(res.status).toBe(400);
  });

  it("starts with a snapshot of active leases, then pushes events with the lease attached", async () => {
    const first = await makeLease(h, "orders-db", "app_1", "spiffe://example.org/agent/a", 120_000);
    const s = await openStream(h.url, auth());
    try {
      expect(s.status).toBe(200);
      expect(s.headers.get("content-type")).toMatch(/^text\/event-stream/);
      expect(s.headers.get("x-request-id")).toMatch(/^req_/);
      const snap = await s.next();
      expect(snap.event).toBe("snapshot");
      const data = JSON.parse(snap.data) as {
        now: string;
        leases: Array<{ id: string; task: { id: string }; ttl_seconds: number }>;
        approvals: unknown[] | null;
      };
      expect(data.leases.map((l) => l.id)).toContain(first.id);
      expect(data.leases.find((l) => l.id === first.id)?.task.id).toBe("TASK-7");
      expect(Array.isArray(data.approvals)).toBe(true);

      const second = await makeLease(h, "billing-db", "app_2", "spiffe://example.org/agent/b", 60_000);
      const msg = await s.next((m) => m.event === "message" && m.data.includes(second.id));
      expect(msg.id).toMatch(/^\d+-\d+$/);
      const ev = JSON.parse(msg.data) as {
        id: string;
        type: string;
        resource: string;
        lease: { id: string; expires_at: string; intent: { action: string } };
      };
      expect(ev).toMatchObject({ type: "issued", resource: "billing-db", id: msg.id });
      expect(ev.lease.id).toBe(second.id);
      expect(Date.parse(ev.lease.expires_at)).toBe(second.expiresAt);
      expect(ev.lease.intent.action).toBe("read");

      // Ending the lease through the lease service (as a revoke does) reaches the stream too.
      await h.sidecar.leaseService.endLease("billing-db", second.id, "revoked");
      const ended = await s.next((m) => m.event === "message" && JSON.parse(m.data).type === "ended");
      expect(JSON.parse(ended.data)).toMatchObject({ lease_id: second.id, reason: "revoked" });
    } finally {
      s.close();
    }
  });

  it("replays the events after Last-Event-ID instead of a snapshot", async () => {
    await h.events.publish({ type: "rotated", resource: "orders-db", account: "x1" });
    const markId = (await h.redis.xrevrange(`${h.prefix}events`, "+", "-", "COUNT", 1))[0]?.[0] ?? "0-0";
    await h.events.publish({ type: "rotation_failed", resource: "orders-db", account: "x2", reason: "boom" });
    await h.events.publish({ type: "quarantined", resource: "orders-db", account: "x2", reason: "boom" });
    const s = await openStream(h.url, { ...auth(), "last-event-id": markId });
    try {
      const a = await s.next();
      const b = await s.next();
      expect(a.event).toBe("message");
      expect([JSON.parse(a.data).type, JSON.parse(b.data).type]).toEqual(["rotation_failed", "quarantined"]);
      expect(JSON.parse(b.data).reason).toBe("boom");
    } finally {
      s.close();
    }
  });

  it("sends heartbeats, and forgets a client that went away", async () => {
    const s = await openStream(h.url, auth());
    await s.next((m) => m.event === "snapshot");
    await waitFor("a heartbeat", () => s.heartbeats() > 0);
    const clients = async () => {
      const text = await (await fetch(`${h.url}/metrics`)).text();
      return Number(/^leasehold_event_stream_clients (\d+)/m.exec(text)?.[1]);
    };
    expect(await clients()).toBeGreaterThanOrEqual(1);
    s.close();
    await waitFor("the stream to be forgotten", async () => (await clients()) === 0);
    expect(await clients()).toBe(0);
  });

  it("pushes approval changes with the pending list", async () => {
    const s = await openStream(h.url, auth());
    try {
      await s.next((m) => m.event === "snapshot");
      await h.redis.xadd(`${h.prefix}events`, "*", "type", "approval_decided", "resource", "orders-db");
      const msg = await s.next((m) => m.event === "message" && m.data.includes("approval_decided"));
      expect(JSON.parse(msg.data).approvals).toEqual([]);
    } finally {
      s.close();
    }
  });
});

describe("the dashboard at /ui", () => {
  it("is served with a strict Content-Security-Policy and no inline script", async () => {
    for (const path of ["/ui", "/ui/"]) {
      const res = await fetch(`${h.url}${path}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/html/);
      const csp = res.headers.get("content-security-policy") ?? "";
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain("unsafe-inline");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
      const html = await res.text();
      const scripts = [...html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)];
      expect(scripts.length).toBeGreaterThan(0);
      for (const m of scripts) {
        expect(m[0]).toMatch(/src="\/ui\/app\.js"/);
        expect(m[1]?.trim()).toBe("");
      }
      expect(html).not.toMatch(/\son[a-z]+=/i);
      expect(html).not.toMatch(/https?:\/\//);
    }
    const js = await fetch(`${h.url}/ui/app.js`);
    expect(js.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect(await js.text()).not.toMatch(/innerHTML|localStorage|sessionStorage|https?:\/\//);
    expect((await fetch(`${h.url}/ui/app.css`)).headers.get("content-type")).toMatch(/^text\/css/);
    expect((await fetch(`${h.url}/ui/../package.json`)).status).toBe(404);
    expect((await fetch(`${h.url}/ui/nope.js`)).status).toBe(404);
  });

  it("keeps the Host and Origin guard: foreign ones are refused", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port: h.port, path: "/ui", headers: { host: "evil.example" } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(403);
    const cross = await fetch(`${h.url}/v1/leases/stream`, {
      headers: { ...auth(), origin: "http://evil.example" },
    });
    expect(cross.status).toBe(403);
    const own = await fetch(`${h.url}/ui`, { headers: { origin: h.url } });
    expect(own.status).toBe(200);
  });
});
