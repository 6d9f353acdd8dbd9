import type { Redis } from "ioredis";

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
