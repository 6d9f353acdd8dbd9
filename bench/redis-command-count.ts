import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";

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
 * (INFO commandstats counts both alike). Nothing else may use the servers meanwhile.
 */
export async function countCommands(
  servers: readonly Redis[],
  work: () => Promise<unknown>,
): Promise<CommandCount> {
  const sent = new Map<string, number>();
  const inScripts = new Map<string, number>();
  const marker = `bench-marker-${randomBytes(6).toString("hex")}`;
  const monitors = await Promise.all(servers.map((s) => s.monitor()));
  const seen = monitors.map(
    (m) =>
      new Promise<void>((resolve) => {
        m.on("monitor", (_time: string, args: string[], source: string) => {
          const name = (args[0] ?? "").toLowerCase();
          if (name === "echo" && args[1] === marker) return resolve();
          if (name === "cluster" || name === "info") return;
          bump(source === "lua" ? inScripts : sent, name);
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
