import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { JWK } from "jose";
import type { Adapter } from "../adapters/adapter.js";
import { builtinAdapters } from "../adapters/registry.js";
import { loadAdminToken } from "./admin-token.js";
import { buildApp, type ReadyReport } from "./app.js";
import { ApprovalStore } from "./approvals/approval-store.js";
import { AuditLog } from "./audit/index.js";
import type { Config } from "./config.js";
import { createIdentityVerifier, createLeaseTokenService, loadLeaseTokenKeys } from "./identity/index.js";
import { LeaseStore, Reaper } from "./leases/index.js";
import type { Logger } from "./logger.js";
import { loadPolicy } from "./policy/index.js";
import { createRedis } from "./redis.js";
import { ResourceCatalog } from "./resources/catalog.js";
import { type CrashPoint, Reconciler, RotationEngine } from "./rotation/index.js";
import { VaultStore } from "./secrets/index.js";
import { LeaseService } from "./service/lease-service.js";
import type { PolicyPort } from "./service/ports.js";
import { ResourceService } from "./service/resource-service.js";
import { loadAdapterModules } from "./adapter-modules.js";

export interface SidecarOptions {
  config: Config;
  log: Logger;
  crashHook?: (point: CrashPoint) => void;
  /** Run the reaper and reconciler loops. @default true */
  background?: boolean;
  /** How often the reconciler runs, ms. @default 10000 */
  reconcileIntervalMs?: number;
}

export interface Sidecar {
  readonly app: ReturnType<typeof buildApp>;
  readonly leaseService: LeaseService;
  readonly resourceService: ResourceService;
  readonly reaper: Reaper;
  readonly reconciler: Reconciler;
  readonly adminToken: string;
  readonly id: string;
  /** Re-reads the policy file; a file that fails validation leaves the old policy in force. */
  reloadPolicy(): Promise<{ ok: true } | { ok: false; error: string }>;
  close(): Promise<void>;
}

/** Wires the real dependencies once, from the config: the only place that builds them. */
export async function createSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const { config, log } = opts;
  const id = `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  const redis = createRedis(config.redis, log);
  const prefix = config.redis.prefix;
  const secrets = new VaultStore({
    address: config.vault.address,
    auth: config.vault.auth,
    mount: config.vault.mount,
    prefix: config.vault.prefix,
    timeoutMs: config.vault.timeoutMs,
    log: log.child({ module: "vault" }),
  });
  const audit = await AuditLog.open(config.audit.file, id);
  const adapters = new Map<string, Adapter<unknown>>(builtinAdapters);
  for (const a of await loadAdapterModules(
    config.adapters.map((m) => m.module),
    adapters,
  ))
    adapters.set(a.id, a);
  const leases = new LeaseStore({ redis, prefix });
  const catalog = new ResourceCatalog(secrets);
  const keys = await loadLeaseTokenKeys({ file: config.tokens.signingKey });
  const jwksKey = `${prefix}jwks`;
  const publishKeys = async () => {
    for (const k of keys.publicJwks().keys) {
      if (k.kid) await redis.hset(jwksKey, k.kid, JSON.stringify(k));
    }
  };
  await publishKeys().catch((err: unknown) =>
    log.warn({ err: { message: (err as Error).message } }, "could not publish lease-token keys to redis"),
  );
  const tokens = createLeaseTokenService({
    keys,
    extraKeyResolver: async (kid: string) => {
      const raw = await redis.hget(jwksKey, kid);
      return raw ? (JSON.parse(raw) as JWK) : undefined;
    },
  });
  const identity = createIdentityVerifier({
    audience: config.identity.audience,
    trust: config.identity.trust.map((t) => ({
      ...t,
      subjects: [...t.subjects],
      algorithms: t.algorithms ? [...t.algorithms] : undefined,
    })),
    maxTokenLifetime: config.identity.maxTokenLifetime,
    clockSkew: config.identity.clockSkew,
  });
  const policyEngine = await loadPolicy(config.policy.file ? { file: config.policy.file } : {});
  const policy: PolicyPort = policyEngine;
  const rotation = new RotationEngine({
    secrets,
    leases,
    catalog,
    adapters,
    audit,
    redis,
    prefix,
    log: log.child({ module: "rotation" }),
    maxFailures: config.rotation.maxFailures,
    backoff: config.rotation.backoff,
    maxBackoff: config.rotation.maxBackoff,
    lockTtlMs: config.rotation.lockTtl * 1000,
    adapterTimeoutMs: config.rotation.adapterTimeout * 1000,
    crashHook: opts.crashHook,
  });
  const approvals = new ApprovalStore(redis, prefix);
  const leaseService = new LeaseService({
    leases,
    secrets,
    catalog,
    rotation,
    identity,
    tokens,
    policy,
    audit,
    log,
    approvals,
    approvalTtlSeconds: config.approvals.ttl,
  });
  const resourceService = new ResourceService({ secrets, leases, catalog, rotation, adapters, audit, log });
  const reconciler = new Reconciler({
    secrets,
    leases,
    catalog,
    rotation,
    log: log.child({ module: "reconciler" }),
  });
  const reaper = new Reaper({
    leases,
    expire: (resource, leaseId) => leaseService.endLease(resource, leaseId, "expired"),
    intervalMs: config.reaper.intervalMs,
    log: log.child({ module: "reaper" }),
  });
  const adminToken = await loadAdminToken(config.admin.tokenFile);

  const ready = async (): Promise<ReadyReport> => {
    const [r, v] = await Promise.all([
      redis.ping().then(
        (x) => x === "PONG",
        () => false,
      ),
      secrets.ready(),
    ]);
    const checks = { redis: r, vault: v, audit: audit.healthy() };
    return { ok: r && v && checks.audit, checks };
  };

  const app = buildApp({
    log,
    leases: leaseService,
    resources: resourceService,
    adapters,
    adminToken,
    ready,
    jwks: async () => {
      const all = await redis.hvals(jwksKey).catch(() => [] as string[]);
      const own = keys.publicJwks().keys;
      const seen = new Set(own.map((k) => k.kid));
      return { keys: [...own, ...all.map((s) => JSON.parse(s) as JWK).filter((k) => !seen.has(k.kid))] };
    },
    allowedHosts: config.listen.allowedHosts,
    allowedOrigins: config.listen.allowedOrigins,
  });

  let reconcileTimer: NodeJS.Timeout | undefined;
  if (opts.background ?? true) {
    reaper.start();
    const reconcile = () =>
      reconciler
        .reconcileAll()
        .catch((err: unknown) => log.warn({ err: { message: (err as Error).message } }, "reconcile failed"));
    void reconcile();
    reconcileTimer = setInterval(
      reconcile,
      opts.reconcileIntervalMs ?? config.rotation.reconcileInterval * 1000,
    );
    reconcileTimer.unref();
  }

  return {
    app,
    leaseService,
    resourceService,
    reaper,
    reconciler,
    adminToken,
    id,
    reloadPolicy: () => policyEngine.reload(),
    close: async () => {
      reaper.stop();
      clearInterval(reconcileTimer);
      rotation.stop();
      await app.close();
      secrets.close();
      await audit.close();
      redis.disconnect();
    },
  };
}
