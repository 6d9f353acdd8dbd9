import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  eventStreamKey,
  type LeaseEvent,
  LeaseEventChannel,
  type StreamEntryFields,
} from "../../sidecar/events/index.js";
import type { LeaseRecord } from "../../sidecar/leases/index.js";
import { createLogger } from "../../sidecar/logger.js";
import { toStreamEvent } from "../../sidecar/ops/event-stream.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";

const log = createLogger("silent");
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

const lease: LeaseRecord = {
  id: "lse_channel_0001",
  resource: "orders-db",
  account: "app_orders_1",
  agent: "spiffe://example.org/agent/a",
  task: { id: "T-1" },
  intent: { action: "read" },
  state: "ended",
  issued_at: 1_000,
  expires_at: 61_000,
  max_expires_at: 121_000,
  ended_at: 30_000,
  end_reason: "checkin",
};

/** Each typed event, with the entry the lease store wrote for it before the channel existed. */
const CASES: ReadonlyArray<[LeaseEvent, StreamEntryFields]> = [
  [
    { type: "issued", lease },
    {
      type: "issued",
      resource: "orders-db",
      account: "app_orders_1",
      lease_id: lease.id,
      agent: lease.agent,
    },
  ],
  [
    { type: "renewed", lease },
    {
      type: "renewed",
      resource: "orders-db",
      account: "app_orders_1",
      lease_id: lease.id,
      agent: lease.agent,
    },
  ],
  [
    { type: "ended", lease, reason: "checkin" },
    {
      type: "ended",
      resource: "orders-db",
      account: "app_orders_1",
      lease_id: lease.id,
      agent: lease.agent,
      reason: "checkin",
    },
  ],
  [
    { type: "expiring_soon", lease, seconds_left: 42 },
    {
      type: "expiring_soon",
      resource: "orders-db",
      account: "app_orders_1",
      lease_id: lease.id,
      agent: lease.agent,
      reason: "expires in 42s",
    },
  ],
  [
    { type: "rotated", resource: "orders-db", account: "app_orders_1", lease_id: lease.id },
    { type: "rotated", resource: "orders-db", account: "app_orders_1", lease_id: lease.id },
  ],
  [
    { type: "rotation_failed", resource: "orders-db", account: "app_orders_1", reason: "timeout" },
    { type: "rotation_failed", resource: "orders-db", account: "app_orders_1", reason: "timeout" },
  ],
  [
    { type: "quarantined", resource: "orders-db", account: "app_orders_1", reason: "timeout" },
    { type: "quarantined", resource: "orders-db", account: "app_orders_1", reason: "timeout" },
  ],
];

async function entries(prefix: string): Promise<string[][]> {
  const all = (await redis.xrange(eventStreamKey(prefix), "-", "+")) as Array<[string, string[]]>;
  return all.map(([, fields]) => fields);
}

describe("the lease event channel", () => {
  it("writes each event to the stream in the entry format operators' tools read, never the lease record", async () => {
    const viaChannel = newPrefix("events-channel");
    const channel = new LeaseEventChannel({ redis, prefix: viaChannel, log });
    for (const [event] of CASES) await channel.publish(event);
    const written = await entries(viaChannel);
    // The entry format operators' tools read: the fields in order, strings, none undefined.
    const expected = CASES.map(([, entry]) =>
      Object.entries(entry).flatMap(([k, v]) => (v === undefined ? [] : [k, String(v)])),
    );
    expect(written).toEqual(expected);
    expect(written).toHaveLength(CASES.length);
    expect(JSON.stringify(written)).not.toContain("T-1");
  });

  it("carries approvals with their id as a field of its own, as the operators' readers parse it", async () => {
    const prefix = newPrefix("events-approvals");
    const channel = new LeaseEventChannel({ redis, prefix, log });
    await channel.publish({
      type: "approval_requested",
      resource: "orders-db",
      agent: lease.agent,
      approval_id: "apr_ABCDEFGHIJKL",
    });
    await channel.publish({
      type: "approval_decided",
      resource: "orders-db",
      agent: lease.agent,
      approval_id: "apr_ABCDEFGHIJKL",
      decision: "denied",
    });
    const all = (await redis.xrange(eventStreamKey(prefix), "-", "+")) as Array<[string, string[]]>;
    const read = all.map(([id, flat]) => toStreamEvent(id, flat));
    expect(read[0]).toMatchObject({
      type: "approval_requested",
      resource: "orders-db",
      agent: lease.agent,
      approval_id: "apr_ABCDEFGHIJKL",
    });
    expect(read[1]).toMatchObject({
      type: "approval_decided",
      reason: "denied",
      approval_id: "apr_ABCDEFGHIJKL",
    });
  });

  it("tells local subscribers with the lease record, past a failing one, until they unsubscribe", async () => {
    const prefix = newPrefix("events-local");
    const channel = new LeaseEventChannel({ redis, prefix, log });
    const heard: LeaseEvent[] = [];
    channel.subscribe(() => {
      throw new Error("a broken subscriber");
    });
    const unsubscribe = channel.subscribe((e) => heard.push(e));
    await channel.publish({ type: "ended", lease, reason: "checkin" });
    expect(heard).toEqual([{ type: "ended", lease, reason: "checkin" }]);
    unsubscribe();
    await channel.publish({ type: "issued", lease });
    expect(heard).toHaveLength(1);
    expect(await entries(prefix)).toHaveLength(2);
  });

  it("tells local subscribers even when the stream cannot be written, and rejects", async () => {
    // A client that never connected and queues nothing: every command fails at once.
    const offline = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false });
    const channel = new LeaseEventChannel({ redis: offline, prefix: newPrefix("events-offline"), log });
    const heard: string[] = [];
    channel.subscribe((e) => heard.push(e.type));
    await expect(channel.publish({ type: "ended", lease, reason: "revoked" })).rejects.toThrow();
    expect(heard).toEqual(["ended"]);
    offline.disconnect();
  });
});
