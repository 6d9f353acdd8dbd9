import { isIP } from "node:net";
import { Redis, type RedisOptions } from "ioredis";
import type { Credential } from "../adapter.js";
import { AdapterError } from "../adapter.js";
import type { RedisAclTarget } from "./config.js";
import { toAdapterError } from "./errors.js";

/**
 * Milliseconds left before `deadline` (an epoch-ms instant), for the next network step.
 * @throws AdapterError timeout (retryable) once the deadline has passed.
 */
export function remainingMs(deadline: number, action: string): number {
  const left = deadline - Date.now();
  if (left <= 0) throw new AdapterError("timeout", `redis-acl: ${action} timed out`, true);
  return left;
}

function tlsOption(target: RedisAddress): RedisOptions["tls"] {
  if (target.tls === undefined || target.tls === false) return undefined;
  const settings = target.tls === true ? {} : target.tls;
  const servername = settings.servername ?? (isIP(target.host) === 0 ? target.host : undefined);
  return {
    rejectUnauthorized: settings.rejectUnauthorized ?? true,
    ...(settings.ca === undefined ? {} : { ca: settings.ca }),
    ...(servername === undefined ? {} : { servername }),
  };
}

/** Where one connection goes: a target's address and TLS settings (no `tls`: plain TCP). */
export type RedisAddress = Pick<RedisAclTarget, "host" | "port"> & Partial<Pick<RedisAclTarget, "tls">>;

/**
 * ioredis options for one connection to `where` (TLS as configured, SNI from a host name) on
 * which exactly the commands sent reach the server: connected on demand; no reconnects, offline
 * queue, ready check or client-info commands.
 */
export function redisConnectionOptions(
  where: RedisAddress,
  timeouts: { connectTimeout: number; commandTimeout: number },
): RedisOptions {
  const tls = tlsOption(where);
  return {
    host: where.host,
    port: where.port,
    ...(tls === undefined ? {} : { tls }),
    lazyConnect: true,
    connectTimeout: timeouts.connectTimeout,
    commandTimeout: timeouts.commandTimeout,
    enableReadyCheck: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    reconnectOnError: () => false,
    autoResubscribe: false,
    disableClientInfo: true,
  };
}

/** Closes a connection at once; never throws. */
export function closeConnection(redis: Redis): void {
  redis.disconnect(false);
}

/**
 * Runs one command within `deadline`; past it the connection is dropped and a retryable
 * timeout thrown. Arguments go as separate bulk strings (no quoting, no injection); failures
 * are mapped by `toAdapterError`, which never keeps ioredis' error (it holds the arguments).
 */
export async function command(
  redis: Redis,
  args: readonly [string, ...string[]],
  deadline: number,
  action: string,
): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => {
        closeConnection(redis);
        reject(new AdapterError("timeout", `redis-acl: ${action} timed out`, true));
      },
      Math.max(0, deadline - Date.now()),
    );
  });
  const [name, ...rest] = args;
  const pending = redis.call(name, ...rest);
  pending.catch(() => undefined);
  try {
    return await Promise.race([pending, expired]);
  } catch (err) {
    throw toAdapterError(err, action);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Opens a fresh connection and, given a credential, authenticates with `AUTH user password`
 * as an explicit command (ioredis' own auth-on-connect would retry and log on refusal).
 * No reconnects, no offline queue, no ready check or client-info commands: exactly the
 * commands this adapter sends reach the server, so the admin needs no other permission.
 * Rejects with an AdapterError; a refused AUTH is `auth_failed`.
 */
export async function openConnection(
  target: RedisAclTarget,
  cred: Credential | undefined,
  deadline: number,
): Promise<Redis> {
  const left = remainingMs(deadline, "connect");
  const redis = new Redis(
    redisConnectionOptions(target, {
      connectTimeout: Math.max(1, Math.min(left, target.connectTimeoutMs ?? left)),
      commandTimeout: left,
    }),
  );
  // Without a listener a refused connection would be reported as an unhandled 'error' event.
  // ioredis rejects connect() with "Connection is closed"; the socket's own error says why.
  let socketError: unknown;
  redis.on("error", (err: unknown) => {
    socketError ??= err;
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.connect(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new AdapterError("timeout", "redis-acl: connect timed out", true)),
          left,
        );
      }),
    ]);
    clearTimeout(timer);
    if (cred !== undefined)
      await command(redis, ["AUTH", cred.username, cred.password], deadline, `AUTH as "${cred.username}"`);
    return redis;
  } catch (err) {
    clearTimeout(timer);
    closeConnection(redis);
    throw toAdapterError(err instanceof AdapterError ? err : (socketError ?? err), "connect");
  }
}
