import { Redis } from "ioredis";
import type { RedisClient } from "../../sidecar/redis.js";
import { startRedisCluster } from "../support/redis-cluster.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";

/** A Redis deployment the lease suites run against, opened once per test file. */
export interface OpenBackend {
  /** A key prefix of its own, for one test file. */
  readonly prefix: string;
  /** A new connection (each "sidecar" gets its own); disconnected by `close()`. */
  client(): RedisClient;
  /** Disconnects every client and removes what the tests left behind. */
  close(): Promise<void>;
}

export interface RedisBackend {
  readonly name: string;
  open(name: string): Promise<OpenBackend>;
}

/** The local single Redis on 127.0.0.1:6379, under a unique prefix. */
export const singleRedis: RedisBackend = {
  name: "single Redis",
  open: async (name) => {
    const prefix = testPrefix(name);
    const clients: Redis[] = [];
    return {
      prefix,
      client: () => {
        const r = new Redis(REDIS_URL);
        clients.push(r);
        return r;
      },
      close: async () => {
        for (const c of clients) c.disconnect();
        await dropPrefix(prefix);
      },
    };
  },
};

/** A private three-master Redis Cluster of local redis-server processes, removed afterwards. */
export const localCluster: RedisBackend = {
  name: "three-node Redis Cluster",
  open: async (name) => {
    const cluster = await startRedisCluster();
    const clients: RedisClient[] = [];
    return {
      prefix: testPrefix(name),
      client: () => {
        const c = cluster.client();
        clients.push(c);
        return c;
      },
      close: async () => {
        for (const c of clients) c.disconnect();
        await cluster.stop();
      },
    };
  },
};

/** Both deployment forms, for `describe.each`. */
export const BACKENDS: readonly RedisBackend[] = [singleRedis, localCluster];
