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

/**
 * Times one command once: commands queued while offline pass through `sendCommand` again when
 * the connection comes up, and MULTI/pipelines pass each queued command through it.
 */
function timeCommand(seen: WeakSet<Command>, command: Command, observe: RedisCallObserver): void {
  if (seen.has(command)) return;
  seen.add(command);
  const started = process.hrtime.bigint();
  const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
  command.promise.then(
    () => observe(command.name, seconds(), "ok"),
    () => observe(command.name, seconds(), "error"),
  );
}

/**
 * An ioredis client (one server or Sentinel) that times every command it sends and reports it
 * to `observe`. A subclass rather than a patched instance: ioredis has no command hooks, and
 * `sendCommand` is the method every command goes through. `duplicate()` gives a plain client,
 * so blocking reads on dedicated connections do not skew the latencies.
 */
export class InstrumentedRedis extends Redis {
  private readonly observe: RedisCallObserver;
  private readonly seen = new WeakSet<Command>();

  constructor(observe: RedisCallObserver, urlOrOptions: string | RedisOptions, options: RedisOptions = {}) {
    if (typeof urlOrOptions === "string") super(urlOrOptions, options);
    else super(urlOrOptions);
    this.observe = observe;
  }

  override sendCommand(command: Command, stream?: Parameters<Redis["sendCommand"]>[1]): unknown {
    // Fields are set after super() returns; ioredis sends nothing synchronously before that.
    if (this.seen) timeCommand(this.seen, command, this.observe);
    return super.sendCommand(command, stream);
  }
}

/** The Redis Cluster counterpart of InstrumentedRedis. */
export class InstrumentedCluster extends Cluster {
  private readonly observe: RedisCallObserver;
  private readonly seen = new WeakSet<Command>();

  constructor(observe: RedisCallObserver, nodes: ClusterNode[], options?: ClusterOptions) {
    super(nodes, options);
    this.observe = observe;
  }

  override sendCommand(
    command: Command,
    stream?: Parameters<Cluster["sendCommand"]>[1],
    node?: Parameters<Cluster["sendCommand"]>[2],
  ): unknown {
    if (this.seen) timeCommand(this.seen, command, this.observe);
    return super.sendCommand(command, stream, node);
  }
}
