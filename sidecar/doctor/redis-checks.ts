import { Redis } from "ioredis";
import type { Config } from "../config.js";
import { createLogger } from "../logger.js";
import { createRedis, type RedisClient, redisProblem } from "../redis.js";
import { redisAddress, redisCause } from "../redis-errors.js";
import { withoutUserinfo } from "../util/dependency-error.js";
import { type DoctorCheck, fail, ok, warn } from "./types.js";

/** The settings docs/operations.md ("Redis settings for durability") recommends, with why. */
const DURABILITY: ReadonlyArray<{ key: string; want: readonly string[]; why: string }> = [
  { key: "appendonly", want: ["yes"], why: "a Redis restart loses every lease" },
  { key: "appendfsync", want: ["everysec", "always"], why: "a crash may lose up to 30 s of lease changes" },
  {
    key: "maxmemory-policy",
    want: ["noeviction"],
    why: "under memory pressure Redis deletes leasehold's keys",
  },
];

/** A Redis opened for doctor: the sidecar's own client, or a failure line naming address and cause. */
export async function openRedis(config: Config): Promise<{ redis?: RedisClient; checks: DoctorCheck[] }> {
  const address = redisAddress(config.redis);
  const redis = createRedis(config.redis, createLogger("silent"));
  const problem = await redisProblem(redis, { waitMs: 3000 });
  if (problem) {
    redis.disconnect();
    const fix = /authentication/.test(problem)
      ? "put the right user and password in redis.url (through ${REDIS_PASSWORD})"
      : `start Redis at ${address}, or correct redis.url`;
    return { checks: [fail(`redis ${address}`, problem, fix)] };
  }
  return { redis, checks: [ok(`redis ${address}`, "reachable, PING answered")] };
}

/**
 * Whether the Redis accepts commands from a client with no password: one connection to the
 * same server without redis.url's user and password. Not checked for Sentinel and Cluster.
 */
export async function checkRedisAuth(config: Config): Promise<DoctorCheck> {
  const address = redisAddress(config.redis);
  const check = `redis ${address} authentication`;
  if (config.redis.cluster?.length || config.redis.sentinel) {
    return warn(
      check,
      "cannot check with Sentinel or Cluster",
      "make sure every node has a password (requirepass or ACL users)",
    );
  }
  let url: URL;
  try {
    url = new URL(withoutUserinfo(config.redis.url));
  } catch {
    url = new URL("redis://invalid");
  }
  if (!url.hostname)
    return warn(
      check,
      "cannot check a Unix-socket Redis",
      "make sure it has a password (requirepass or ACL users)",
    );
  // No ready check and no SELECT: the first command sent is PING, whose answer is the verdict.
  const anonymous = new Redis({
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: Number(url.port || 6379),
    ...(url.protocol === "rediss:" ? { tls: {} } : {}),
    lazyConnect: true,
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectTimeout: 3000,
    commandTimeout: 3000,
  });
  anonymous.on("error", () => undefined);
  try {
    await anonymous.connect();
    await anonymous.ping();
    return fail(
      check,
      "off: Redis answers commands from anyone without a password",
      "set a password (`requirepass` in redis.conf, or an ACL user limited to the prefix) and put it in redis.url through ${REDIS_PASSWORD}",
    );
  } catch (err) {
    const cause = redisCause(err);
    if (/authentication failed|NOAUTH/.test(cause))
      return ok(check, "on: a client without a password is refused");
    return warn(
      check,
      `cannot check: ${cause}`,
      "check by hand: `redis-cli -h HOST -p PORT ping` must answer NOAUTH",
    );
  } finally {
    anonymous.disconnect();
  }
}

/** appendonly, appendfsync and maxmemory-policy as docs/operations.md recommends (CONFIG GET). */
export async function checkRedisDurability(config: Config, redis: RedisClient): Promise<DoctorCheck[]> {
  const address = redisAddress(config.redis);
  const out: DoctorCheck[] = [];
  for (const { key, want, why } of DURABILITY) {
    const check = `redis ${address} ${key}`;
    let value: string | undefined;
    try {
      const reply = (await redis.call("CONFIG", "GET", key)) as string[];
      value = reply[1];
    } catch (err) {
      out.push(
        warn(
          check,
          `cannot check: CONFIG GET refused (${redisCause(err)})`,
          `make sure it is ${want[0]} (managed Redis: the provider's settings)`,
        ),
      );
      continue;
    }
    if (value !== undefined && want.includes(value)) out.push(ok(check, value));
    else {
      const fixLine = `set \`${key} ${want[0]}\` in redis.conf (or CONFIG SET ${key} ${want[0]}, then CONFIG REWRITE)`;
      out.push((key === "maxmemory-policy" ? fail : warn)(check, `${value ?? "unknown"}: ${why}`, fixLine));
    }
  }
  return out;
}
