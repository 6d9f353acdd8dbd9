import type { Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from "ioredis";
import type { Config } from "./config.js";
import type { Logger } from "./logger.js";
import { InstrumentedCluster, InstrumentedRedis, type RedisCallObserver } from "./ops/index.js";
import { describeRedisError, isRedisAuthError, redisAddress, redisCause } from "./redis-errors.js";

export { describeRedisError, redisAddress } from "./redis-errors.js";

/** A single Redis (or Sentinel-managed) connection, or a Redis Cluster client. */
export type RedisClient = Redis | Cluster;

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(":");
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

/** Errors whose message this module rewrote in leasehold's words (they still mean "unavailable"). */
const named = new WeakSet<object>();

/**
 * What one client (and its duplicates) knows about its Redis: the address for messages and why
 * the last connection attempt failed, so a command refused for want of a connection names the
 * real cause instead of ioredis's "Stream isn't writeable…".
 */
class RedisFaults {
  /** The cause of the last failed connection attempt; undefined once connected. */
  lastCause: string | undefined;

  constructor(
    readonly address: string,
    /** The connection is TLS (`rediss://`): a connect that times out may be a plain-text server. */
    readonly tls = false,
  ) {}

  describe(err: unknown): string {
    if (err instanceof Error && named.has(err)) return err.message;
    return describeRedisError(this.address, err, this.lastCause);
  }

  /** A command's error for want of Redis (or of credentials), reworded to name address and cause. */
  readonly nameFailure = (err: unknown): void => {
    if (!(err instanceof Error) || named.has(err)) return;
    if (!isRedisUnavailable(err) && !isRedisAuthError(err)) return;
    err.message = this.describe(err);
    named.add(err);
  };

  /** Follows `client`'s connection: logs each new cause of failure, and the recovery. */
  follow(client: RedisClient, log: Logger): void {
    client.on("error", (err: unknown) => {
      let cause = redisCause(err, this.lastCause);
      if (this.tls && cause === "timed out")
        cause = "timed out connecting with TLS (does the server speak TLS?)";
      if (cause !== this.lastCause)
        log.warn({ err: { message: `redis ${this.address}: ${cause}` } }, "redis error");
      this.lastCause = cause;
    });
    // Between losing the connection and the first failed attempt to get it back.
    client.on("close", () => {
      this.lastCause ??= "connection lost";
    });
    client.on("ready", () => {
      if (this.lastCause !== undefined) log.info({ redis: this.address }, "redis reachable again");
      this.lastCause = undefined;
    });
  }
}

const faultsOf = new WeakMap<RedisClient, RedisFaults>();

/**
 * A single-server or Sentinel client whose failed commands name the address and the cause
 * (InstrumentedRedis's failure hook, on the one handler it puts on each command).
 */
class NamedRedis extends InstrumentedRedis {
  private readonly faults: RedisFaults;
  private readonly log: Logger;

  constructor(
    faults: RedisFaults,
    log: Logger,
    observe: RedisCallObserver | undefined,
    url: string | RedisOptions,
    options?: RedisOptions,
  ) {
    super(observe, url, options, faults.nameFailure);
    this.faults = faults;
    this.log = log;
    faultsOf.set(this, faults);
    faults.follow(this, log);
  }

  /** A new connection to the same Redis, untimed, whose errors are named the same way. */
  override duplicate(override?: Partial<RedisOptions>): Redis {
    return new NamedRedis(new RedisFaults(this.faults.address, this.faults.tls), this.log, undefined, {
      ...this.options,
      ...override,
    });
  }
}

/** The Redis Cluster counterpart of NamedRedis. */
class NamedCluster extends InstrumentedCluster {
  private readonly faults: RedisFaults;
  private readonly log: Logger;
  private readonly seeds: ClusterNode[];

  constructor(
    faults: RedisFaults,
    log: Logger,
    observe: RedisCallObserver | undefined,
    nodes: ClusterNode[],
    options?: ClusterOptions,
  ) {
    super(observe, nodes, options, faults.nameFailure);
    this.faults = faults;
    this.log = log;
    this.seeds = nodes;
    faultsOf.set(this, faults);
    faults.follow(this, log);
  }

  override duplicate(
    overrideStartupNodes: ClusterNode[] = [],
    overrideOptions: ClusterOptions = {},
  ): Cluster {
    const nodes = overrideStartupNodes.length > 0 ? overrideStartupNodes : this.seeds.slice(0);
    return new NamedCluster(
      new RedisFaults(this.faults.address, this.faults.tls),
      this.log,
      undefined,
      nodes,
      {
        ...this.options,
        ...overrideOptions,
      },
    );
  }
}

/**
 * One Redis client for the sidecar, in the form the config names: a single server (url),
 * Sentinel, or Cluster. Commands fail fast while Redis is down (no offline queue), so
 * requests fail closed with 503 instead of hanging; the client reconnects by itself.
 * Every failure it reports (logs, rejected commands, {@link redisProblem}) names the address,
 * never the password, and the cause in leasehold's words; so do its duplicates.
 * With `observe`, every command's duration and outcome is reported (the Prometheus metrics).
 */
export function createRedis(config: Config["redis"], log: Logger, observe?: RedisCallObserver): RedisClient {
  const common: RedisOptions = {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: 2000,
    commandTimeout: 3000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    // How long disconnect() waits for the socket to close; ioredis waits this long even for a
    // socket that never connected, which would hold a failed start open for 2 s.
    disconnectTimeout: 500,
  };
  const faults = new RedisFaults(redisAddress(config), config.url.startsWith("rediss:"));
  if (config.cluster?.length) {
    const options = {
      redisOptions: common,
      enableOfflineQueue: false,
      clusterRetryStrategy: (times: number) => Math.min(times * 200, 2000),
    };
    return new NamedCluster(faults, log, observe, config.cluster.map(hostPort), options);
  }
  if (config.sentinel) {
    const url = new URL(config.url);
    const options: RedisOptions = {
      ...common,
      name: config.sentinel.name,
      sentinels: config.sentinel.sentinels.map(hostPort),
      password: url.password ? decodeURIComponent(url.password) : undefined,
      db: Number(url.pathname.slice(1) || 0),
    };
    return new NamedRedis(faults, log, observe, options);
  }
  return new NamedRedis(faults, log, observe, config.url, common);
}

/**
 * Why `client`'s Redis is not usable now (`redis 127.0.0.1:6379: connection refused
 * (ECONNREFUSED)`), or undefined when it answers PING. With `waitMs`, a connection attempt under
 * way is given up to that long to succeed or fail first (start-up); without, the answer is
 * immediate, from the last attempt's cause (`/readyz`).
 */
export async function redisProblem(
  client: RedisClient,
  opts: { waitMs?: number } = {},
): Promise<string | undefined> {
  const faults = faultsOf.get(client);
  const pending =
    client.status === "connecting" || client.status === "connect" || client.status === "reconnecting";
  if (pending && opts.waitMs) await settled(client, opts.waitMs);
  try {
    const pong = await client.ping();
    return pong === "PONG" ? undefined : `redis ${faults?.address ?? "?"}: unexpected answer to PING`;
  } catch (err) {
    return faults ? faults.describe(err) : describeRedisError("?", err);
  }
}

/** Resolves at the client's next "ready", "error" or "end", or after `timeoutMs`. */
function settled(client: RedisClient, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      for (const ev of ["ready", "error", "end"]) client.off(ev, done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    timer.unref();
    for (const ev of ["ready", "error", "end"]) client.once(ev, done);
  });
}

/** True for errors that mean "Redis is not reachable right now" (fail closed with 503). */
export function isRedisUnavailable(err: unknown): boolean {
  const e = err as { name?: string; message?: string; code?: string } | null;
  if (!e) return false;
  if (typeof e === "object" && named.has(e)) return true;
  if (e.name === "MaxRetriesPerRequestError" || e.name === "ClusterAllFailedError") return true;
  if (e.code === "ECONNREFUSED" || e.code === "ECONNRESET" || e.code === "ETIMEDOUT") return true;
  return /Stream isn't writeable|Connection is closed|Command timed out|CLUSTERDOWN|None of startup nodes is available|^NOAUTH|^WRONGPASS/.test(
    e.message ?? "",
  );
}
