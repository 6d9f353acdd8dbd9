import {
  Cluster,
  type ClusterNode,
  type ClusterOptions,
  type Command,
  Redis,
  type RedisOptions,
} from "ioredis";
import type { CallResult } from "./metrics.js";

/** Receives the duration (seconds) and result of each Redis command. */
export type RedisCallObserver = (command: string, seconds: number, result: CallResult) => void;

/** Runs on a failed command's error before anyone else sees it (it may reword its message). */
export type RedisFailureHook = (err: unknown) => void;

const FOLLOWED = Symbol("leasehold.redis.followed");

/**
 * Follows one command once (commands queued while offline pass through `sendCommand` again when
 * the connection comes up, and MULTI/pipelines pass each queued command through it), with one
 * handler pair on its promise for both jobs: `failed` first, then the timing, when observed.
 */
function follow(command: Command, observe?: RedisCallObserver, failed?: RedisFailureHook): void {
  const marked = command as Command & { [FOLLOWED]?: true };
  if (marked[FOLLOWED]) return;
  marked[FOLLOWED] = true;
  if (observe === undefined) {
    if (failed) command.promise.catch(failed);
    return;
  }
  const started = performance.now();
  command.promise.then(
    () => observe(command.name, (performance.now() - started) / 1000, "ok"),
    (err: unknown) => {
      failed?.(err);
      observe(command.name, (performance.now() - started) / 1000, "error");
    },
  );
}

/**
 * An ioredis client (one server or Sentinel) that times every command it sends and reports it
 * to `observe`. A subclass rather than a patched instance: ioredis has no command hooks, and
 * `sendCommand` is the method every command goes through. `duplicate()` gives a plain client,
 * so blocking reads on dedicated connections do not skew the latencies.
 */
export class InstrumentedRedis extends Redis {
  private readonly observe: RedisCallObserver | undefined;
  private readonly failed: RedisFailureHook | undefined;
  private readonly following = true;

  /** Without `observe` nothing is timed; `failed` sees each failed command's error first. */
  constructor(
    observe: RedisCallObserver | undefined,
    urlOrOptions: string | RedisOptions,
    options: RedisOptions = {},
    failed?: RedisFailureHook,
  ) {
    if (typeof urlOrOptions === "string") super(urlOrOptions, options);
    else super(urlOrOptions);
    this.observe = observe;
    this.failed = failed;
  }

  override sendCommand(command: Command, stream?: Parameters<Redis["sendCommand"]>[1]): unknown {
    // Fields are set after super() returns; ioredis sends nothing synchronously before that.
    if (this.following) follow(command, this.observe, this.failed);
    return super.sendCommand(command, stream);
  }
}

/** The Redis Cluster counterpart of InstrumentedRedis. */
export class InstrumentedCluster extends Cluster {
  private readonly observe: RedisCallObserver | undefined;
  private readonly failed: RedisFailureHook | undefined;
  private readonly following = true;

  constructor(
    observe: RedisCallObserver | undefined,
    nodes: ClusterNode[],
    options?: ClusterOptions,
    failed?: RedisFailureHook,
  ) {
    super(nodes, options);
    this.observe = observe;
    this.failed = failed;
  }

  override sendCommand(
    command: Command,
    stream?: Parameters<Cluster["sendCommand"]>[1],
    node?: Parameters<Cluster["sendCommand"]>[2],
  ): unknown {
    if (this.following) follow(command, this.observe, this.failed);
    return super.sendCommand(command, stream, node);
  }
}
