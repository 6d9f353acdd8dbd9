import { randomBytes } from "node:crypto";
import type { Cluster, Redis } from "ioredis";

/**
 * `server.monitor()`, with its error listener attached before MONITOR is sent: on a busy shared
 * server a MONITOR line can arrive with MONITOR's own OK, which ioredis reports as "Command queue
 * state error" (an unhandled error event would end the process); that line is lost (it was sent
 * before MONITOR answered, so not by work that starts after this resolves), the rest are seen.
 */
export async function openMonitor(server: Redis): Promise<Redis> {
  const m = server.duplicate({ monitor: true, lazyConnect: true });
  m.on("error", () => undefined);
  const monitoring = new Promise<void>((resolve) => m.once("monitoring", () => resolve()));
  await m.connect();
  await monitoring;
  return m;
}

/** A command a server saw: its source ("lua" for a script's own calls) and arguments. */
export interface SeenCommand {
  readonly source: string;
  readonly args: string[];
}

/**
 * What every server of `client` (each master of a Cluster) saw while `work` ran: MONITOR on each,
 * ended by an ECHO marker sent to each once `work` is done.
 */
export async function watchedCommands(
  client: Redis | Cluster,
  work: () => Promise<unknown>,
): Promise<SeenCommand[]> {
  const servers: Redis[] = (client as { isCluster?: boolean }).isCluster
    ? (client as Cluster).nodes("master")
    : [client as Redis];
  const marker = `monitor-marker-${randomBytes(4).toString("hex")}`;
  const lines: SeenCommand[] = [];
  const monitors = await Promise.all(servers.map(openMonitor));
  const done = monitors.map(
    (m) =>
      new Promise<void>((resolve) => {
        m.on("monitor", (_t: string, args: string[], source: string) => {
          if (args[0]?.toLowerCase() === "echo" && args[1] === marker) resolve();
          else lines.push({ source, args });
        });
      }),
  );
  try {
    await work();
    await Promise.all(servers.map((s) => s.echo(marker)));
    await Promise.all(done);
  } finally {
    for (const m of monitors) m.disconnect();
  }
  return lines;
}
