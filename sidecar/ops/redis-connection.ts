import { Cluster } from "ioredis";
import type { RedisClient } from "../redis.js";

/** How long the ops layer's blocking reads (XREAD, XREADGROUP) wait, ms. */
export const DEFAULT_BLOCK_MS = 2000;

/**
 * A dedicated connection like `shared` (same server, Sentinel or Cluster) for blocking reads:
 * a command timeout above the block time, and commands queued while it (re)connects so a read
 * issued during setup waits instead of failing.
 */
export function blockingConnection(shared: RedisClient, blockMs: number = DEFAULT_BLOCK_MS): RedisClient {
  const commandTimeout = blockMs + 5000;
  if (shared instanceof Cluster) {
    return shared.duplicate([], {
      enableOfflineQueue: true,
      redisOptions: { ...shared.options.redisOptions, commandTimeout, enableOfflineQueue: true },
    });
  }
  return shared.duplicate({ commandTimeout, lazyConnect: false, enableOfflineQueue: true });
}
