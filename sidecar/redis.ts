import { Cluster, Redis, type RedisOptions } from "ioredis";
import type { Config } from "./config.js";
import type { Logger } from "./logger.js";
import { InstrumentedCluster, InstrumentedRedis, type RedisCallObserver } from "./ops/index.js";

/** A single Redis (or Sentinel-managed) connection, or a Redis Cluster client. */
export type RedisClient = Redis | Cluster;

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(":");
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

/**
 * One Redis client for the sidecar, in the form the config names: a single server (url),
 * Sentinel, or Cluster. Commands fail fast while Redis is down (no offline queue), so
 * requests fail closed with 503 instead of hanging; the client reconnects by itself.
 * With `observe`, every command's duration and outcome is reported (the Prometheus metrics).
 */
export function createRedis(config: Config["redis"], log: Logger, observe?: RedisCallObserver): RedisClient {
  const common: RedisOptions = {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: 2000,
    commandTimeout: 3000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  };
  let client: RedisClient;
  if (config.cluster?.length) {
    const options = {
      redisOptions: common,
      enableOfflineQueue: false,
      clusterRetryStrategy: (times: number) => Math.min(times * 200, 2000),
    };
    const nodes = config.cluster.map(hostPort);
    client = observe ? new InstrumentedCluster(observe, nodes, options) : new Cluster(nodes, options);
  } else if (config.sentinel) {
    const url = new URL(config.url);
    const options: RedisOptions = {
      ...common,
      name: config.sentinel.name,
      sentinels: config.sentinel.sentinels.map(hostPort),
      password: url.password ? decodeURIComponent(url.password) : undefined,
      db: Number(url.pathname.slice(1) || 0),
    };
    client = observe ? new InstrumentedRedis(observe, options) : new Redis(options);
  } else {
    client = observe ? new InstrumentedRedis(observe, config.url, common) : new Redis(config.url, common);
  }
  client.on("error", (err: Error) => log.warn({ err: { message: err.message } }, "redis error"));
  return client;
}

/** True for errors that mean "Redis is not reachable right now" (fail closed with 503). */
export function isRedisUnavailable(err: unknown): boolean {
  const e = err as { name?: string; message?: string; code?: string } | null;
  if (!e) return false;
  if (e.name === "MaxRetriesPerRequestError" || e.name === "ClusterAllFailedError") return true;
  if (e.code === "ECONNREFUSED" || e.code === "ECONNRESET" || e.code === "ETIMEDOUT") return true;
  return /Stream isn't writeable|Connection is closed|Command timed out|CLUSTERDOWN|None of startup nodes is available/.test(
    e.message ?? "",
  );
}
