import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { loadAdminToken } from "./admin-token.js";
import { buildApp, type ReadyReport } from "./app.js";
import { type ClusterIdentity, ClusterDesk, redisKeyspaceName, vaultPrefixName } from "./cluster/index.js";
import type { Config } from "./config.js";
import type { Reaper } from "./leases/index.js";
import type { Logger } from "./logger.js";
import { attachOps } from "./ops/index.js";
import type { ProxyManager } from "./proxy/index.js";
import type { AdminRotation, CrashPoint, Reconciler } from "./rotation/index.js";
import type { LeaseService, OperatorService, ResourceService } from "./service/index.js";
import { type IdentityParts, wireIdentity } from "./wire/identity.js";
import { type Infrastructure, openInfrastructure } from "./wire/infrastructure.js";
import { type Services, wireServices } from "./wire/services.js";

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
  /** Admin password rotation: the schedule's loop runs with the others; `rotate` does one now. */
  readonly adminRotation: AdminRotation;
  /** Whether this sidecar's Vault prefix and Redis keyspace form one cluster. */
  readonly cluster: ClusterIdentity;
  readonly adminToken: string;
  readonly id: string;
  /** Re-reads the policy file; a file that fails validation leaves the old policy in force. */
  reloadPolicy(): Promise<{ ok: true } | { ok: false; error: string }>;
  /** The local protocol listeners (proxy mode). */
  readonly proxies: ProxyManager;
  close(): Promise<void>;
}

/**
 * Wires the real dependencies once, from the config: the only place that builds them. Stages:
 * infrastructure (Redis, Vault, audit, adapters), identity, services, the HTTP app and the
 * operators' views, then the background loops.
 */
export async function createSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const { config, log } = opts;
  const id = `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  const infra = await openInfrastructure(config, log, id);
  const ids = await wireIdentity(config, infra.redis, log, infra.secrets);
  const svc = await wireServices(config, log, infra, ids, opts.crashHook);
  const adminToken = await loadAdminToken(config.admin.tokenFile);
  // Before any loop runs: a sidecar whose Redis is not the cluster's must not reconcile into it.
  await svc.cluster.check();
  const app = buildApp({
    operators: svc.operators,
    audit: infra.audit,
    auditFiles: [config.audit.file],
    log,
    leases: svc.leaseService,
    resources: svc.resourceService,
    adapters: infra.adapters,
    adminToken,
    ready: () => readiness(infra, svc.cluster),
    cluster: new ClusterDesk({
      identity: svc.cluster,
      names: { vault: vaultPrefixName(config.vault), redis: redisKeyspaceName(config.redis) },
      audit: infra.audit,
      reconcile: () => svc.reconciler.reconcileAll(),
      log: log.child({ module: "cluster" }),
    }),
    jwks: () => ids.jwks(),
    tokenExchange: (body) => ids.exchange(body),
    allowedHosts: config.listen.allowedHosts,
    allowedOrigins: config.listen.allowedOrigins,
  });
  const background = opts.background ?? true;
  const ops = await attachOps(app, {
    config: config.ops,
    adminToken,
    leaseService: svc.leaseService,
    resourceService: svc.resourceService,
    leases: infra.leases,
    events: infra.events,
    redis: infra.redis,
    prefix: infra.prefix,
    metrics: infra.metrics,
    log,
    sidecarId: id,
    background,
  });
  const stopLoops = startLoops(
    config,
    log,
    ids,
    svc,
    background ? (opts.reconcileIntervalMs ?? null) : undefined,
  );
  return {
    app,
    leaseService: svc.leaseService,
    resourceService: svc.resourceService,
    operators: svc.operators,
    reaper: svc.reaper,
    reconciler: svc.reconciler,
    adminRotation: svc.adminRotation,
    cluster: svc.cluster,
    adminToken,
    id,
    reloadPolicy: () => reloadPolicy(svc, infra, log),
    proxies: svc.proxies,
    close: async () => {
      await svc.proxies.close();
      stopLoops();
      svc.rotation.stop();
      svc.adminRotation.stop();
      await ops.stop();
      await app.close();
      // Pooled admin sessions of the adapters (and of DBAs' own adapter modules that pool).
      await Promise.allSettled([...infra.adapters.values()].map((a) => a.close?.()));
      infra.secrets.close();
      await infra.audit.close();
      infra.redis.disconnect();
    },
  };
}

/**
 * Ready when Redis answers, Vault is usable, the audit file can be written and Vault and Redis
 * form one cluster.
 */
async function readiness(infra: Infrastructure, cluster: ClusterIdentity): Promise<ReadyReport> {
  const [r, v, c] = await Promise.all([
    infra.redis.ping().then(
      (x) => x === "PONG",
      () => false,
    ),
    infra.secrets.ready(),
    cluster.check(),
  ]);
  const checks = { redis: r, vault: v, audit: infra.audit.healthy(), cluster: c.status === "ok" };
  const reasons: Record<string, string> = {};
  if (c.status !== "ok") reasons.cluster = `${c.status}: ${c.reason}`;
  return { ok: r && v && checks.audit && checks.cluster, checks, reasons };
}

/** Re-reads the policy file and audits the outcome; a refused file leaves the old policy in force. */
async function reloadPolicy(svc: Services, infra: Infrastructure, log: Logger) {
  const r = await svc.policy.reload();
  await infra.audit
    .append({
      event: "policy_reload",
      scope: "policy",
      policies: [...svc.policy.policyIds],
      reason: r.ok ? "reloaded" : `refused, the previous policy stays in force: ${r.error}`,
    })
    .catch((err: unknown) =>
      log.error({ err: { message: (err as Error).message } }, "could not audit the policy reload"),
    );
  return r;
}

/**
 * Starts the key publisher and, when `reconcileEveryMs` is not undefined (null: the config's
 * interval), the reaper, the reconciler and the admin rotation schedule. Returns what stops them.
 */
function startLoops(
  config: Config,
  log: Logger,
  ids: IdentityParts,
  svc: Services,
  reconcileEveryMs: number | null | undefined,
): () => void {
  const warn = (what: string) => (err: unknown) =>
    log.warn({ err: { message: (err as Error).message } }, what);
  // Keys are published again well within their TTL; a key that left the file stops being accepted.
  const publishTimer = setInterval(
    () => void ids.publishKeys().catch(warn("could not publish lease-token keys to vault")),
    Math.max(1000, (config.tokens.publishTtl * 1000) / 3),
  );
  publishTimer.unref();
  let reconcileTimer: NodeJS.Timeout | undefined;
  // One GET every 2 s notices a Redis that lost its data (or a config pointed elsewhere) soon.
  const clusterTimer = setInterval(() => void svc.cluster.check(), 2000);
  clusterTimer.unref();
  if (reconcileEveryMs !== undefined) {
    svc.reaper.start();
    // Once at start: ownership entries for registrations made before the index existed.
    void svc.resourceService.backfillOwners().catch(warn("could not fill the account ownership index"));
    const reconcile = () =>
      svc.reconciler
        .reconcileAll()
        .then(() => svc.syncProxies())
        .catch(warn("reconcile failed"));
    void reconcile();
    reconcileTimer = setInterval(reconcile, reconcileEveryMs ?? config.rotation.reconcileInterval * 1000);
    reconcileTimer.unref();
    // Admin passwords due (Vault's last_rotated_at) are rotated by one sidecar at a time (a lock).
    svc.adminRotation.start(reconcileEveryMs ?? config.rotation.reconcileInterval * 1000);
  }
  return () => {
    svc.reaper.stop();
    svc.adminRotation.stop();
    clearInterval(reconcileTimer);
    clearInterval(publishTimer);
    clearInterval(clusterTimer);
  };
}
