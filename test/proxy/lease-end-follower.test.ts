import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { createLogger } from "../../sidecar/logger.js";
import { LeaseEndFollower } from "../../sidecar/proxy/lease-end-follower.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { openMonitor } from "../support/redis-monitor.js";
import { waitFor } from "../support/wait-for.js";

const prefix = testPrefix("lease-end-follower");

afterAll(async () => {
  await dropPrefix(prefix);
});

describe("the lease-end follower", () => {
  it("acts on every end, and lets events gather between reads instead of reading once per event", async () => {
    const redis = new Redis(REDIS_URL);
    const stream = `${prefix}events`;
    await redis.xadd(stream, "*", "type", "issued", "lease_id", "lse_before");
    const ended: string[] = [];
    const follower = new LeaseEndFollower({
      redis: redis.duplicate(),
      stream,
      log: createLogger("silent"),
      onEnded: (id) => void ended.push(id),
      blockMs: 200,
    });
    const monitor = await openMonitor(redis);
    let reads = 0;
    monitor.on("monitor", (_time: string, args: string[]) => {
      if (String(args[0]).toLowerCase() === "xread" && args.includes(stream)) reads += 1;
    });
    try {
      follower.start();
      // Its first read is blocked on the stream's tail: then 200 events, one after another.
      await waitFor("the follower's first read", () => reads > 0);
      for (let i = 0; i < 200; i++) {
        const type = i % 50 === 49 ? "ended" : "issued";
        await redis.xadd(stream, "*", "type", type, "lease_id", `lse_${i}`, "reason", "checkin");
      }
      await waitFor("the last end", () => ended.includes("lse_199"));
      expect(ended).toEqual(["lse_49", "lse_99", "lse_149", "lse_199"]);
      // One read per event would be 200; events that arrive while a read's batch settles share the next.
      expect(reads).toBeLessThan(100);
    } finally {
      await follower.stop();
      monitor.disconnect();
      redis.disconnect();
    }
  });
});
