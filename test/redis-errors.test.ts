import type { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { createLogger } from "../sidecar/logger.js";
import { createRedis, isRedisUnavailable, redisAddress, redisProblem } from "../sidecar/redis.js";
import { freePort } from "./support/free-port.js";
import { startRedisServer } from "./support/redis-server.js";

/** Redis faults name the address and the cause in leasehold's words, never the password. */

const log = createLogger("silent");

describe("redisAddress", () => {
  it("names host:port without user or password, or the Sentinel or Cluster nodes", () => {
    expect(redisAddress({ url: "redis://app:s3cret@10.0.0.5:6380/2" })).toBe("10.0.0.5:6380");
    expect(redisAddress({ url: "rediss://:s3cret@redis.internal/0" })).toBe("redis.internal:6379");
    expect(
      redisAddress({
        url: "redis://:pw@x/0",
        sentinel: { name: "mymaster", sentinels: ["s1:26379", "s2:26379"] },
      }),
    ).toBe("sentinel mymaster (s1:26379,s2:26379)");
    expect(redisAddress({ url: "redis://x", cluster: ["n1:7000", "n2:7001"] })).toBe(
      "cluster n1:7000,n2:7001",
    );
  });
});

describe("a Redis client's failures", () => {
  it("a closed port: commands and redisProblem say `connection refused (ECONNREFUSED)`, still 'unavailable'", async () => {
    const port = await freePort();
    const r = createRedis({ url: `redis://:pw-123456@127.0.0.1:${port}/0`, prefix: "x:" } as never, log);
    try {
      expect(await redisProblem(r, { waitMs: 5000 })).toBe(
        `redis 127.0.0.1:${port}: connection refused (ECONNREFUSED)`,
      );
      const err = await r.get("k").then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err?.message).toBe(`redis 127.0.0.1:${port}: connection refused (ECONNREFUSED)`);
      expect(isRedisUnavailable(err)).toBe(true);
      // A duplicate (the blocking readers' connections) names its failures the same way.
      const d = (r as Redis).duplicate({ enableOfflineQueue: false });
      try {
        expect(await redisProblem(d, { waitMs: 5000 })).toBe(
          `redis 127.0.0.1:${port}: connection refused (ECONNREFUSED)`,
        );
      } finally {
        d.disconnect();
      }
    } finally {
      r.disconnect();
    }
  });

  it("a wrong password: authentication failed (WRONGPASS), the password not in the message", async () => {
    const server = await startRedisServer();
    const r = createRedis(
      { url: `redis://default:not-the-password@127.0.0.1:${server.port}/0`, prefix: "x:" } as never,
      log,
    );
    try {
      const problem = await redisProblem(r, { waitMs: 5000 });
      expect(problem).toBe(`redis 127.0.0.1:${server.port}: authentication failed (WRONGPASS)`);
    } finally {
      r.disconnect();
      await server.stop();
    }
  });

  it("TLS against a plain-text Redis says so", async () => {
    const r = createRedis({ url: "rediss://127.0.0.1:6379/0", prefix: "x:" } as never, log);
    try {
      expect(await redisProblem(r, { waitMs: 5000 })).toMatch(
        /^redis 127\.0\.0\.1:6379: (timed out connecting with TLS \(does the server speak TLS\?\)|TLS handshake failed: .+)$/,
      );
    } finally {
      r.disconnect();
    }
  });

  it("a server that answers: no problem", async () => {
    const server = await startRedisServer();
    const r = createRedis(
      { url: `redis://default:${server.root.password}@127.0.0.1:${server.port}/0`, prefix: "x:" } as never,
      log,
    );
    try {
      expect(await redisProblem(r, { waitMs: 5000 })).toBeUndefined();
    } finally {
      r.disconnect();
      await server.stop();
    }
  });
});
