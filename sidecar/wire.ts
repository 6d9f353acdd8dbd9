import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { JWK } from "jose";
import type { Adapter } from "../adapters/adapter.js";
import { builtinAdapters } from "../adapters/registry.js";
import { loadAdminToken } from "./admin-token.js";
import { buildApp, type ReadyReport } from "./app.js";
import { ApprovalStore } from "./approvals/approval-store.js";
import { AuditLog, loadAuditKey } from "./audit/index.js";
import type { Config } from "./config.js";
import {
  ClusterKeys,
  createDpopVerifier,
  createIdentityVerifier,
  createLeaseTokenService,
  loadLeaseTokenKeys,
  withDelegation,
  withReplayGuard,
} from "./identity/index.js";
import { LeaseStore, Reaper } from "./leases/index.js";
import type { Logger } from "./logger.js";
import { loadPolicy } from "./policy/index.js";
import { attachOps, createAuditTap, createMetrics, instrumentSecretStore } from "./ops/index.js";
import { ProxyManager } from "./proxy/index.js";
import { createRedis } from "./redis.js";
import { ResourceCatalog } from "./resources/catalog.js";
import { type CrashPoint, Reconciler, RotationEngine } from "./rotation/index.js";
import { VaultStore } from "./secrets/index.js";
import {
  DecisionGate,
  LeaseService,
  OperatorService,
  type PolicyPort,
  ResourceService,
} from "./service/index.js";
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
  /** Operators and DBAs acting with their own identity (policy decides). */
  readonly operators: OperatorService;
  readonly reaper: Reaper;
  readonly reconciler: Reconciler;
  readonly adminToken: string;
  readonly id: string;
  /** Re-reads the policy file; a file that fails validation leaves the old policy in force. */
  reloadPolicy(): Promise<{ ok: true } | { ok: false; error: string }>;
  /** The local protocol listeners (proxy mode). */
  readonly proxies: ProxyManager;
  close(): Promise<void>;
}

/** Wires the real dependencies once, from the config: the only place that builds them. */
export async function createSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const { config, log } = opts;
  const id = `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
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
  const audit = await AuditLog.open(config.audit.file, id, createAuditTap({ metrics, redis, prefix, log }), {
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
  for (const a of await loadAdapterModules(
    config.adapters.map((m) => m.module),
    adapters,
  ))
    adapters.set(a.id, a);
  const leases = new LeaseStore({ redis, prefix });
  const catalog = new ResourceCatalog(secrets);
  const keys = await loadLeaseTokenKeys({ file: config.tokens.signingKey });
  const clusterKeys = new ClusterKeys({ redis, prefix, ttlMs: config.tokens.publishTtl * 1000 });
  const publishKeys = async () => {
    await keys.refresh();
    await clusterKeys.publish(keys.publicJwks().keys);
  };
  await publishKeys().catch((err: unknown) =>
    log.warn({ err: { message: (err as Error).message } }, "could not publish lease-token keys to redis"),
  );
  const tokens = createLeaseTokenService({
    keys,
    extraKeyResolver: (kid: string) => clusterKeys.resolve(kid),
  });
  const delegated = withDelegation(
    createIdentityVerifier({
      audience: config.identity.audience,
      trust: config.identity.trust.map((t) => ({
        ...t,
        subjects: [...t.subjects],
        algorithms: t.algorithms ? [...t.algorithms] : undefined,
      })),
      maxTokenLifetime: config.identity.maxTokenLifetime,
      clockSkew: config.identity.clockSkew,
    }),
    {
      trust: config.identity.trust,
      maxDepth: config.identity.delegation.maxDepth,
      humans: config.identity.delegation.humans,
    },
  );
  const identity = config.identity.oneTimeJti
    ? withReplayGuard(delegated, { redis, prefix, clockSkew: config.identity.clockSkew })
    : delegated;

  const dpop = createDpopVerifier({
    replay: redis,
    prefix,
    windowSeconds: config.identity.dpop.window,
    clockSkew: config.identity.clockSkew,
    ...(config.identity.dpop.algorithms ? { algorithms: config.identity.dpop.algorithms } : {}),
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
  const gate = new DecisionGate({ policy, audit });
  // The checkout response names the resource's local listener; the listeners need the lease service.
  let proxies: ProxyManager | undefined;
  const leaseService = new LeaseService({
    proxyEndpoint: (resource: string) => proxies?.endpointFor(resource),
    leases,
    secrets,
    catalog,
    rotation,
    identity,
    tokens,
    policy,
    gate,
    dpop,
    audit,
    log,
    approvals,
    approvalTtlSeconds: config.approvals.ttl,
    checkoutsPerMinute: config.limits.checkoutsPerMinute,
  });
  const proxyManager = new ProxyManager({
    leases: leaseService,
    redis,
    prefix,
    audit,
    log: log.child({ module: "proxy" }),
    auditStatements: config.proxy.auditStatements,
    handshakeTimeoutMs: config.proxy.handshakeTimeoutMs,
    tls: config.proxy.tls === "off" ? false : "self-signed",
  });
  proxies = proxyManager;
  const syncProxies = async () => {
    const r = await proxyManager.sync(await catalog.load());
    for (const f of r.failed)
      log.warn({ resource: f.resource, error: f.error }, "proxy listener not running");
  };
  await syncProxies().catch((err: unknown) =>
    log.warn({ err: { message: (err as Error).message } }, "proxy sync failed"),
  );
  const resourceService = new ResourceService({
    secrets,
    leases,
    catalog,
    rotation,
    adapters,
    audit,
    log,
    onRegistrationsChanged: () => syncProxies(),
  });
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

  const operators = new OperatorService({ identity, policy, catalog, audit, gate });
  const app = buildApp({
    operators,
    audit,
    auditFiles: [config.audit.file],
    log,
    leases: leaseService,
    resources: resourceService,
    adapters,
    adminToken,
    ready,
    jwks: async () => {
      const all = await clusterKeys.all().catch(() => [] as JWK[]);
      const own = keys.publicJwks().keys;
      const seen = new Set(own.map((k) => k.kid));
      return { keys: [...own, ...all.filter((k) => !seen.has(k.kid))] };
    },
    allowedHosts: config.listen.allowedHosts,
    allowedOrigins: config.listen.allowedOrigins,
  });
  const ops = await attachOps(app, {
    config: config.ops,
    adminToken,
    leaseService,
    resourceService,
    leases,
    redis,
    prefix,
    metrics,
    log,
    sidecarId: id,
    background: opts.background ?? true,
  });

  // Keys are published again well within their TTL; a key that left the file stops being accepted.
  const publishTimer = setInterval(
    () =>
      void publishKeys().catch((err: unknown) =>
        log.warn({ err: { message: (err as Error).message } }, "could not publish lease-token keys to redis"),
      ),
    Math.max(1000, (config.tokens.publishTtl * 1000) / 3),
  );
  publishTimer.unref();
  let reconcileTimer: NodeJS.Timeout | undefined;
  if (opts.background ?? true) {
    reaper.start();
    const reconcile = () =>
      reconciler
        .reconcileAll()
        .then(() => syncProxies())
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
    operators,
    reaper,
    reconciler,
    adminToken,
    id,
    reloadPolicy: async () => {
      const r = await policyEngine.reload();
      await audit
        .append({
          event: "policy_reload",
          scope: "policy",
          policies: [...policyEngine.policyIds],
          reason: r.ok ? "reloaded" : `refused, the previous policy stays in force: ${r.error}`,
        })
        .catch((err: unknown) =>
          log.error({ err: { message: (err as Error).message } }, "could not audit the policy reload"),
        );
      return r;
    },
    proxies: proxyManager,
    close: async () => {
      await proxyManager.close();
      reaper.stop();
      clearInterval(reconcileTimer);
      clearInterval(publishTimer);
      rotation.stop();
      await ops.stop();
      await app.close();
      // Pooled admin sessions of the adapters (and of DBAs' own adapter modules that pool).
      await Promise.allSettled([...adapters.values()].map((a) => a.close?.()));
      secrets.close();
      await audit.close();
      redis.disconnect();
    },
  };
}
