import { Redis } from "ioredis";
import {
  type RedisAddress,
  redisAclConfig,
  redisConnectionOptions,
} from "../../../adapters/redis-acl/index.js";
import { BoundedList, jsonValue, MAX_RESULT_BYTES, scrub } from "./bounds.js";
import { CALL_TIMEOUT_MS, type RunnerLogin, TargetError } from "./login.js";

/**
 * Commands this runner does not send: they log in as someone else, change passwords, or turn
 * the connection into a stream one call cannot answer.
 */
const REFUSED = new Set([
  "auth",
  "hello",
  "acl",
  "monitor",
  "subscribe",
  "psubscribe",
  "ssubscribe",
  "sync",
  "psync",
  "quit",
  "reset",
  "shutdown",
  "replicaof",
  "slaveof",
]);

export interface RedisRequest {
  readonly command: string;
  readonly args: readonly string[];
  readonly maxRows: number;
}

export interface RedisResult {
  result: unknown;
  truncated: boolean;
}

/** A reply within the limits: arrays cut at `maxRows` items (at every level), strings at the byte cap. */
function bounded(reply: unknown, maxRows: number): RedisResult {
  let truncated = false;
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) {
      const list = new BoundedList<unknown>(maxRows);
      for (const item of v) if (!list.push(walk(item))) break;
      truncated ||= list.truncated;
      return list.items;
    }
    if (typeof v === "string" && Buffer.byteLength(v) > MAX_RESULT_BYTES) {
      truncated = true;
      return Buffer.from(v).subarray(0, MAX_RESULT_BYTES).toString("utf8");
    }
    return jsonValue(v);
  };
  const result = walk(reply);
  return { result, truncated };
}

/**
 * Sends one command on a fresh connection (AUTH first, as its own command), closed afterwards.
 * Arguments go as separate bulk strings: nothing is parsed or quoted.
 * @throws TargetError for a refused command or login, never with a password.
 */
export async function runRedis(login: RunnerLogin, req: RedisRequest): Promise<RedisResult> {
  const name = req.command.trim().toLowerCase();
  if (REFUSED.has(name)) {
    throw new TargetError(
      `redis_command does not send ${name.toUpperCase()}: it logs in, changes credentials or streams`,
    );
  }
  const where: RedisAddress =
    login.kind === "proxy" ? { host: login.host, port: login.port } : redisAclConfig.parse(login.connection);
  const redis = new Redis(
    redisConnectionOptions(where, { connectTimeout: 10_000, commandTimeout: CALL_TIMEOUT_MS }),
  );
  redis.on("error", () => undefined);
  const user = login.kind === "proxy" ? login.user : login.username;
  try {
    await redis.connect();
    await redis.call("AUTH", user, login.password);
    return bounded(await redis.call(req.command, ...req.args), req.maxRows);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new TargetError(scrub(message, [login.password]));
  } finally {
    redis.disconnect(false);
  }
}
