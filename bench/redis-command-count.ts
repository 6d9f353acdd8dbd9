import { randomBytes } from "node:crypto";
import { type Command, Redis } from "ioredis";
import { openMonitor } from "../test/support/redis-monitor.js";

/** Commands per name that the servers saw while a piece of work ran. */
export interface CommandCount {
  /** Commands a client sent (each one a request on the wire). */
  readonly sent: Map<string, number>;
  /** Commands run inside Lua scripts (no round trip of their own). */
  readonly inScripts: Map<string, number>;
}

const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

/**
 * Runs `work` while MONITOR watches every server, and counts what they saw. MONITOR tags commands
 * run by a script with source "lua", which is how sent commands are told from a script's own calls
 * (INFO commandstats counts both alike); a script's calls follow its EVAL/EVALSHA line at once.
 * Without `keyPrefix`, nothing else may use the servers meanwhile; with it, only the clients that
 * sent a command naming a key under `keyPrefix` during the work are counted (a shared server).
 */
export async function countCommands(
  servers: readonly Redis[],
  work: () => Promise<unknown>,
  keyPrefix?: string,
): Promise<CommandCount> {
  const marker = `bench-marker-${randomBytes(6).toString("hex")}`;
  const seenLines: Array<{ source: string; name: string }> = [];
  const ours = new Set<string>();
  const monitors = await Promise.all(servers.map(openMonitor));
  const seen = monitors.map(
    (m, i) =>
      new Promise<void>((resolve) => {
        let lastClient = "";
        m.on("monitor", (_time: string, args: string[], source: string) => {
          const name = (args[0] ?? "").toLowerCase();
          if (name === "echo" && args[1] === marker) return resolve();
          if (name === "cluster" || name === "info") return;
          if (source !== "lua") {
            lastClient = `${i}:${source}`;
            if (keyPrefix === undefined || args.some((a) => a.startsWith(keyPrefix))) ours.add(lastClient);
          }
          seenLines.push({ source: source === "lua" ? `lua ${lastClient}` : lastClient, name });
        });
      }),
  );
  try {
    await work();
    // MONITOR output lags the replies: an ECHO sent last marks the end of the work on each server.
    await Promise.all(servers.map((s) => s.echo(marker)));
    await Promise.all(seen);
  } finally {
    for (const m of monitors) m.disconnect();
  }
  const sent = new Map<string, number>();
  const inScripts = new Map<string, number>();
  for (const { source, name } of seenLines) {
    const lua = source.startsWith("lua ");
    const client = lua ? source.slice(4) : source;
    if (keyPrefix !== undefined && !ours.has(client)) continue;
    bump(lua ? inScripts : sent, name);
  }
  return { sent, inScripts };
}

/** Sum of the counts, divided by `per`. */
export function perCall(m: ReadonlyMap<string, number>, per: number): number {
  let n = 0;
  for (const v of m.values()) n += v;
  return n / per;
}

/** The counts as an object of name → count per call, rounded to 2 decimals. */
export function breakdown(m: ReadonlyMap<string, number>, per: number): Record<string, number> {
  return Object.fromEntries([...m].map(([k, v]) => [k, Math.round((v / per) * 100) / 100]));
}

/** Commands that wait for data (a reader's loop), not part of any request's round trips. */
const BLOCKING = new Set([
  "xread",
  "xreadgroup",
  "blpop",
  "brpop",
  "bzpopmin",
  "subscribe",
  "psubscribe",
  "monitor",
]);

/**
 * Runs `work` and counts the Redis round trips it waited for, from this process's side: one each
 * time a command is sent while no other (non-blocking) command of any client is in flight.
 * Commands sent together (a pipeline, a Promise.all) count once; so does a command sent while
 * another one is still out. Meant for sequential work (concurrency 1) with nothing else running.
 */
export async function countRoundTrips(work: () => Promise<unknown>): Promise<number> {
  const proto = Redis.prototype as unknown as { sendCommand(c: Command, ...rest: unknown[]): unknown };
  const original = proto.sendCommand;
  let inFlight = 0;
  let trips = 0;
  const seen = new WeakSet<Command>();
  proto.sendCommand = function (this: unknown, command: Command, ...rest: unknown[]) {
    if (!seen.has(command) && !BLOCKING.has(command.name.toLowerCase())) {
      seen.add(command);
      if (inFlight++ === 0) trips++;
      const done = () => {
        inFlight--;
      };
      command.promise.then(done, done);
    }
    return original.call(this, command, ...rest);
  };
  try {
    await work();
  } finally {
    proto.sendCommand = original;
  }
  return trips;
}
