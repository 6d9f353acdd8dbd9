import type { Adapter } from "../../adapters/adapter.js";
import { createExecAdapter } from "../../adapters/exec/index.js";
import { builtinAdapters } from "../../adapters/registry.js";
import { loadAdapterModules } from "../adapter-modules.js";
import {
  type CallerAttestor,
  ProcCallerAttestor,
  ProcProcessTree,
  type ProcessTree,
} from "../attest/index.js";
import { AuditLog, loadAuditKey } from "../audit/index.js";
import type { Config } from "../config.js";
import { LeaseEventChannel } from "../events/index.js";
import { LeaseStore, loadLeaseMacKey } from "../leases/index.js";
import type { Logger } from "../logger.js";
import { createAuditTap, createMetrics, instrumentSecretStore, type OpsMetrics } from "../ops/index.js";
import { createRedis, type RedisClient } from "../redis.js";
import { ResourceCatalog } from "../resources/catalog.js";
import { type SecretStore, VaultStore } from "../secrets/index.js";
import { waitForDependencies } from "./startup.js";

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
  /** Attests the local process at the other end of a connection (HTTP API and listeners alike). */
  readonly attestor: CallerAttestor;
  /** Process ancestry, for leases bound to a process and its descendants. */
  readonly processTree: ProcessTree;
}

/** How to open the infrastructure. */
export interface OpenOptions {
  /**
   * Seconds to wait for Redis and Vault to answer before giving up (each retry logged with its
   * cause); 0 = one attempt. @default Infinity (until they answer)
   */
  readonly waitForDepsSeconds?: number;
}

/**
 * Opens Redis, Vault and the audit log (instrumented), and loads the adapters, once Redis and
 * Vault answer. Whatever fails, nothing it opened stays open.
 * @throws StartupError `dependency` when Redis or Vault does not answer in time.
 */
export async function openInfrastructure(
  config: Config,
  log: Logger,
  id: string,
  opts: OpenOptions = {},
): Promise<Infrastructure> {
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
  let audit: AuditLog | undefined;
  try {
    await waitForDependencies({
      redis,
      secrets,
      seconds: opts.waitForDepsSeconds ?? Number.POSITIVE_INFINITY,
      log,
    });
    audit = await openAudit(config, id, { metrics, events, redis }, log);
    return await finishInfrastructure(config, { metrics, redis, prefix, secrets, audit, events });
  } catch (err) {
    secrets.close();
    await audit?.close().catch(() => undefined);
    redis.disconnect();
    throw err;
  }
}

/** The audit log, its tap (metrics, events, webhook) and its optional Redis mirror. */
async function openAudit(
  config: Config,
  id: string,
  { metrics, events, redis }: Pick<Infrastructure, "metrics" | "events" | "redis">,
  log: Logger,
): Promise<AuditLog> {
  const prefix = config.redis.prefix;
  return AuditLog.open(config.audit.file, id, createAuditTap({ metrics, events, log }), {
    maxBytes: config.audit.maxBytes,
    hmacKey: config.audit.hmacKeyFile ? await loadAuditKey(config.audit.hmacKeyFile) : undefined,
    mirror: config.audit.stream.enabled
      ? {
          redis,
          key: `${prefix}audit`,
          maxLen: config.audit.stream.maxLen,
          statements: config.audit.stream.statements,
        }
      : undefined,
    onError: (err, where) =>
      where === "write"
        ? log.error({ err: { message: err.message } }, "audit log cannot be written; checkouts are refused")
        : log.warn(
            { err: { message: err.message }, where },
            "audit side channel failed; the file has the record",
          ),
  });
}

/** The adapters, the lease MAC key from Vault, and the stores over Redis and Vault. */
async function finishInfrastructure(
  config: Config,
  o: Pick<Infrastructure, "metrics" | "redis" | "prefix" | "secrets" | "audit" | "events">,
): Promise<Infrastructure> {
  const { metrics, redis, prefix, secrets, audit, events } = o;
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
    // On one Redis node the checkout script appends the `issued` event to the stream itself.
    leases: new LeaseStore({ redis, prefix, macKey, eventStream: events.stream }),
    catalog: new ResourceCatalog(secrets),
    attestor: new ProcCallerAttestor(),
    processTree: new ProcProcessTree(),
  };
}

/** Closes what openInfrastructure opened: the adapters' pooled sessions, Vault, the audit log, Redis. */
export async function closeInfrastructure(infra: Infrastructure): Promise<void> {
  // Pooled admin sessions of the adapters (and of DBAs' own adapter modules that pool).
  await Promise.allSettled([...infra.adapters.values()].map((a) => a.close?.()));
  infra.secrets.close();
  await infra.audit.close();
  infra.redis.disconnect();
}
