import { resolve } from "node:path";
import { type Config, loadConfig } from "../config.js";
import { createLogger } from "../logger.js";
import { VaultStore } from "../secrets/index.js";
import { checkFiles, checkNode } from "./local-checks.js";
import { checkRedisAuth, checkRedisDurability, openRedis } from "./redis-checks.js";
import { checkCluster, checkTargets } from "./target-checks.js";
import type { DoctorCheck } from "./types.js";
import { fail, ok } from "./types.js";
import { checkCapabilities, openVault } from "./vault-checks.js";

export { formatReport, passed } from "./report.js";
export type { CheckStatus, DoctorCheck } from "./types.js";

/** What `leasehold doctor` checks. */
export interface DoctorOptions {
  /** The server's config file. */
  readonly configFile: string;
  /** The environment `${…}` in the config expands from. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Checks a deployment without changing anything: the config, this Node, the files, Redis
 * (reachable, authentication, durability), Vault (reachable, token, the policy's capabilities),
 * the cluster identity, and each registered target (dry run). One line per check, never a secret.
 */
export async function runDoctor(opts: DoctorOptions): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const file = resolve(opts.configFile);
  let config: Config;
  try {
    config = loadConfig(file, opts.env ?? process.env);
    checks.push(ok(`config ${file}`, "parses"));
  } catch (err) {
    checks.push(
      fail(
        `config ${file}`,
        (err as Error).message,
        "correct the key named, then run doctor again (docs/configuration.md)",
      ),
    );
    checks.push(await checkNode());
    return checks;
  }
  checks.push(await checkNode());
  checks.push(...(await checkFiles(config)));
  const log = createLogger("silent");
  const redisOpen = await openRedis(config);
  checks.push(...redisOpen.checks);
  const redis = redisOpen.redis;
  try {
    if (redis) {
      checks.push(await checkRedisAuth(config));
      checks.push(...(await checkRedisDurability(config, redis)));
    }
    const vault = await openVault(config.vault);
    checks.push(...vault.checks);
    if (!vault.token) return checks;
    checks.push(...(await checkCapabilities(config.vault, vault.token)));
    const secrets = new VaultStore({
      address: config.vault.address,
      auth: { method: "token", token: vault.token },
      mount: config.vault.mount,
      prefix: config.vault.prefix,
      timeoutMs: config.vault.timeoutMs,
      log,
    });
    try {
      if (redis) checks.push(await checkCluster(config, secrets, redis));
      checks.push(...(await checkTargets(config, secrets, log)));
    } finally {
      secrets.close();
    }
    return checks;
  } finally {
    redis?.disconnect();
  }
}
