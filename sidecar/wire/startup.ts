import { setTimeout as pause } from "node:timers/promises";
import { LeaseholdError } from "../errors.js";
import type { Logger } from "../logger.js";
import { type RedisClient, redisProblem } from "../redis.js";
import type { SecretStore } from "../secrets/index.js";

/**
 * Why `leasehold serve` gave up at start, and so its exit status:
 * - `config` (1): the config, the policy file, a key or token file, or anything else it was given;
 * - `listen` (2): it cannot listen on its address or socket (in use, not permitted);
 * - `dependency` (3): Redis or Vault did not answer within `--wait-for-deps`.
 */
export type StartupFailure = "config" | "listen" | "dependency";

/** The exit status of each kind of start-up failure (docs/operations.md, "Start-up and exit codes"). */
export const STARTUP_EXIT_CODES: Readonly<Record<StartupFailure, number>> = {
  config: 1,
  listen: 2,
  dependency: 3,
};

/** A start-up failure whose message is the one line `serve` prints. */
export class StartupError extends Error {
  override readonly name = "StartupError";
  constructor(
    readonly kind: StartupFailure,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The kind and one-line message of anything that ended a start: a StartupError as it is; a
 * dependency fault (`upstream_unavailable`) by its detail, which names the address and the cause;
 * anything else as a `config` failure with its message.
 */
export function classifyStartupError(err: unknown): { kind: StartupFailure; message: string } {
  if (err instanceof StartupError) return { kind: err.kind, message: err.message };
  if (err instanceof LeaseholdError && err.code === "upstream_unavailable") {
    return { kind: "dependency", message: err.detail ?? err.message };
  }
  const message = (err as Error | null)?.message ?? String(err);
  return { kind: "config", message: message.split("\n")[0] ?? message };
}

export interface WaitForDepsOptions {
  readonly redis: RedisClient;
  readonly secrets: SecretStore;
  /** Seconds to keep trying; 0 = one attempt; Infinity = until they answer. */
  readonly seconds: number;
  readonly log: Logger;
}

/**
 * Resolves once Redis answers PING and Vault is reachable, unsealed and accepts the sidecar's
 * token. Until then, logs each retry with the cause (`redis 127.0.0.1:6379: connection refused
 * (ECONNREFUSED)`) and tries again, backing off up to 5 s, for at most `seconds`.
 * @throws StartupError `dependency` naming each unreachable dependency once the time is up.
 */
export async function waitForDependencies(o: WaitForDepsOptions): Promise<void> {
  const deadline = Date.now() + o.seconds * 1000;
  for (let attempt = 1; ; attempt++) {
    const [redis, vault] = await Promise.all([redisProblem(o.redis, { waitMs: 5000 }), o.secrets.health()]);
    const problems = [redis, vault.ok ? undefined : vault.reason].filter((p): p is string => p !== undefined);
    if (problems.length === 0) {
      if (attempt > 1) o.log.info({ attempts: attempt }, "redis and vault answer; starting");
      return;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new StartupError(
        "dependency",
        `${problems.join("; ")}${o.seconds > 0 ? ` (still, after waiting ${o.seconds} s)` : ""}`,
      );
    }
    const delayMs = Math.min(5000, 250 * 2 ** Math.min(attempt, 5), left);
    o.log.warn(
      { attempt, retryInMs: delayMs, problems },
      `waiting for ${problems.map((p) => p.split(" ")[0]).join(" and ")}: ${problems.join("; ")}`,
    );
    await pause(delayMs);
  }
}
