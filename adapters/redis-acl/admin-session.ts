import type { Redis } from "ioredis";
import type { Credential } from "../adapter.js";
import { type AdminSessionDriver, setSocketIdle } from "../admin-sessions.js";
import type { RedisAclTarget } from "./config.js";
import { closeConnection, openConnection } from "./connection.js";

/**
 * Opens connections authenticated as the admin ACL user for the shared pool. They never
 * reconnect (no retry strategy, no offline queue), so one that is not `ready` is gone.
 */
export function redisAdminDriver(
  target: RedisAclTarget,
  admin: Credential,
  deadline: number,
): AdminSessionDriver<Redis> {
  return {
    open: () => openConnection(target, admin, deadline),
    isOpen: (redis) => redis.status === "ready",
    close: (redis) => closeConnection(redis),
    setIdle: (redis, idle) => setSocketIdle((redis as unknown as { stream?: unknown }).stream, idle),
  };
}
