import { type ChildProcess, spawn } from "node:child_process";
import { Redis } from "ioredis";
import { freePort } from "../test/support/free-port.js";

/** A redis-server of the benchmark's own: nothing else's commands show in its INFO commandstats. */
export interface PrivateRedis {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Starts `redis-server` on a free port of 127.0.0.1 with no persistence, and resolves once it
 * answers PING. The process is killed by `stop()` or when this process exits.
 */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.once("exit", kill);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const url = `redis://127.0.0.1:${port}/0`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  // Refused connections while the server starts are expected; the loop below retries them.
  probe.on("error", () => undefined);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await probe.connect();
      await probe.ping();
      break;
    } catch (err) {
      probe.disconnect();
      if (child.exitCode !== null || Date.now() > deadline) {
        kill();
        throw new Error(`redis-server on ${port} did not start: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  probe.disconnect();
  return {
    url,
    port,
    stop: async () => {
      kill();
      await exited;
    },
  };
}
