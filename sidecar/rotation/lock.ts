import { randomUUID } from "node:crypto";
import type { RedisClient } from "../redis.js";

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

/** A lock held by one process; the Vault CAS version remains the real fencing token. */
export interface HeldLock {
  readonly token: string;
  extend(ms: number): Promise<boolean>;
  release(): Promise<void>;
}

/** Takes a Redis lock (SET NX PX) or returns null when someone else holds it. */
export async function acquireLock(redis: RedisClient, key: string, ttlMs: number): Promise<HeldLock | null> {
  const token = randomUUID();
  const ok = await redis.set(key, token, "PX", ttlMs, "NX");
  if (ok !== "OK") return null;
  return {
    token,
    extend: async (ms) => (await redis.eval(EXTEND, 1, key, token, ms)) === 1,
    release: async () => {
      await redis.eval(RELEASE, 1, key, token);
    },
  };
}
