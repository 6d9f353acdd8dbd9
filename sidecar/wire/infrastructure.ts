import type { Adapter } from "../../adapters/adapter.js";
import { createExecAdapter } from "../../adapters/exec/index.js";
import { builtinAdapters } from "../../adapters/registry.js";
import { loadAdapterModules } from "../adapter-modules.js";
import { AuditLog, loadAuditKey } from "../audit/index.js";
import type { Config } from "../config.js";
import { LeaseEventChannel } from "../events/index.js";
import { LeaseStore, loadLeaseMacKey } from "../leases/index.js";
import type { Logger } from "../logger.js";
import { createAuditTap, createMetrics, instrumentSecretStore, type OpsMetrics } from "../ops/index.js";
import { createRedis, type RedisClient } from "../redis.js";
import { ResourceCatalog } from "../resources/catalog.js";
import { type SecretStore, VaultStore } from "../secrets/index.js";

/** The stores and connections every part of a sidecar shares. */
export interface Infrastructure {
  readonly metrics: OpsMetrics;
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly secrets: SecretStore;
  readonly audit: AuditLog;
  /** The one channel lease events travel on (local subscribers, then the cluster stream). */
  readonly events: LeaseEventChannel;
  readonly adapters: Map<string, Adapter<unknown>>;
  readonly leases: LeaseStore;
  readonly catalog: ResourceCatalog;
}

/** Opens Redis, Vault and the audit log (instrumented), and loads the adapters. */
export async function openInfrastructure(config: Config, log: Logger, id: string): Promise<Infrastructure> {
  const metrics = createMetrics();
  const redis = createRedis(config.redis, log, (command, seconds, result) =>
    metrics.observeRedisCall(command, seconds, result),
  );
  const prefix = config.redis.prefix;
  const secrets = instrumentSecretStore(
    new VaultStore({
      address: config.vault.address,
      auth: config.vault.auth,
      mount: config.vault.mount,
      prefix: config.vault.prefix,
      timeoutMs: config.vault.timeoutMs,
      log: log.child({ module: "vault" }),
    }),
    (op, seconds, result) => metrics.observeVaultCall(op, seconds, result),
  );
  const events = new LeaseEventChannel({ redis, prefix, log });
  const audit = await AuditLog.open(config.audit.file, id, createAuditTap({ metrics, events, log }), {
    maxBytes: config.audit.maxBytes,
    hmacKey: config.audit.hmacKeyFile ? await loadAuditKey(config.audit.hmacKeyFile) : undefined,
    mirror: config.audit.stream.enabled
      ? { redis, key: `${prefix}audit`, maxLen: config.audit.stream.maxLen }
      : undefined,
    onError: (err, where) =>
      where === "write"
        ? log.error({ err: { message: err.message } }, "audit log cannot be written; checkouts are refused")
        : log.warn(
            { err: { message: err.message }, where },
            "audit side channel failed; the file has the record",
          ),
  });
  const adapters = new Map<string, Adapter<unknown>>(builtinAdapters);
  // The exec adapter runs only the operator's own commands (exec.commands), never a registration's.
  adapters.set("exec", createExecAdapter(config.exec));
  for (const a of await loadAdapterModules(
    config.adapters.map((m) => m.module),
    adapters,
  ))
    adapters.set(a.id, a);
  // Loaded once and held in memory: every lease record in Redis is checked against it, so a
  // sidecar that cannot get it from Vault does not start.
  const macKey = await loadLeaseMacKey(secrets);
  return {
    metrics,
    redis,
    prefix,
    secrets,
    audit,
    events,
    adapters,
    leases: new LeaseStore({ redis, prefix, macKey }),
    catalog: new ResourceCatalog(secrets),
  };
}
