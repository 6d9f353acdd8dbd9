import type { Config } from "./config.js";
import { firstLine, networkCause } from "./util/dependency-error.js";

/**
 * Where the sidecar's Redis is, for messages: `127.0.0.1:6379` (from `redis.url`, without its
 * user and password), `sentinel mymaster (h1:26379,h2:26379)` or `cluster h1:7000,h2:7001`.
 */
export function redisAddress(config: Pick<Config["redis"], "url" | "cluster" | "sentinel">): string {
  if (config.cluster?.length) return `cluster ${config.cluster.join(",")}`;
  if (config.sentinel) return `sentinel ${config.sentinel.name} (${config.sentinel.sentinels.join(",")})`;
  try {
    const u = new URL(config.url);
    if (u.hostname) return `${u.hostname}:${u.port || "6379"}`;
    return u.pathname || "redis";
  } catch {
    return "redis";
  }
}

/** ioredis's ways of saying "there is no usable connection right now" (the cause is elsewhere). */
const NOT_CONNECTED =
  /Stream isn't writeable|Connection is closed|Reached the max retries per request|None of startup nodes is available|Failed to refresh slots cache/;

const AUTH_FAULT = /^(WRONGPASS|NOAUTH)\b|invalid password|invalid username-password/;

interface RedisErrorLike {
  readonly name?: string;
  readonly message?: string;
}

/** True for an authentication refusal (WRONGPASS, NOAUTH). */
export function isRedisAuthError(err: unknown): boolean {
  return AUTH_FAULT.test((err as RedisErrorLike | null)?.message ?? "");
}

/** True when ioredis says only that it has no connection, without saying why. */
export function isRedisNotConnected(err: unknown): boolean {
  const e = err as RedisErrorLike | null;
  if (!e) return false;
  return (
    e.name === "MaxRetriesPerRequestError" ||
    e.name === "ClusterAllFailedError" ||
    NOT_CONNECTED.test(e.message ?? "")
  );
}

/**
 * The cause of a Redis fault in leasehold's words, without the address: `connection refused
 * (ECONNREFUSED)`, `timed out`, `authentication failed (WRONGPASS)`, `TLS handshake failed: …`.
 * `lastConnectionCause` is what the last connection attempt failed with; it replaces ioredis's
 * "Stream isn't writeable…" when a command fails only because there is no connection.
 */
export function redisCause(err: unknown, lastConnectionCause?: string): string {
  const e = (err ?? {}) as RedisErrorLike;
  const message = e.message ?? String(err);
  const auth = /^(WRONGPASS|NOAUTH)\b/.exec(message);
  if (auth) return `authentication failed (${auth[1]})`;
  if (AUTH_FAULT.test(message)) return "authentication failed";
  const net = networkCause(err);
  if (net) return net;
  if (isRedisNotConnected(err)) return lastConnectionCause ?? "not connected";
  if (/Command timed out/.test(message)) return "timed out";
  if (/^CLUSTERDOWN/.test(message)) return "the cluster is down (CLUSTERDOWN)";
  if (/^LOADING/.test(message)) return "still loading its data (LOADING)";
  if (/^READONLY/.test(message)) return "is a read-only replica (READONLY)";
  if (/^OOM/.test(message)) return "out of memory, writes refused (OOM)";
  return firstLine(message) || "error";
}

/** `redis <address>: <cause>`, the one form every Redis fault takes in logs and `/readyz`. */
export function describeRedisError(address: string, err: unknown, lastConnectionCause?: string): string {
  return `redis ${address}: ${redisCause(err, lastConnectionCause)}`;
}
