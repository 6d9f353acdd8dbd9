import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { loadAdminToken } from "./admin-token.js";
import { buildApp } from "./app.js";
import { ClusterDesk, type ClusterIdentity, redisKeyspaceName, vaultPrefixName } from "./cluster/index.js";
import type { Config } from "./config.js";
import type { Reaper } from "./leases/index.js";
import type { Logger } from "./logger.js";
import { attachOps } from "./ops/index.js";
import type { ProxyManager } from "./proxy/index.js";
import type { AdminRotation, CrashPoint, Reconciler } from "./rotation/index.js";
import type { LeaseService, OperatorService, ResourceService } from "./service/index.js";
import { type IdentityParts, wireIdentity } from "./wire/identity.js";
import type { McpHttp } from "./mcp/http-sessions.js";
import { type McpServerFactory, wireMcpHttp } from "./wire/mcp.js";
import { closeInfrastructure, type Infrastructure, openInfrastructure } from "./wire/infrastructure.js";
import { readinessChecks, runReadiness } from "./wire/readiness.js";
import { type PolicyEngine, type Services, wireServices } from "./wire/services.js";
import { logText } from "./util/dependency-error.js";

export interface SidecarOptions {
  config: Config;
  log: Logger;
  crashHook?: (point: CrashPoint) => void;
  /** Run the reaper and reconciler loops. @default true */
  background?: boolean;
  /** Fail (500) any answer its documented schema would change when written (tests). @default false */
  checkResponses?: boolean;
  /** How often the reconciler runs, ms. @default 10000 */
  reconcileIntervalMs?: number;
  /**
   * Seconds to wait at start for Redis and Vault to answer (each retry logged with its cause);
   * 0 = one attempt. @default Infinity (until they answer)
   */
  waitForDepsSeconds?: number;
  /**
   * The engine of `config.policy.file`, already loaded and validated (serve's preflight does, so
   * the policy is compiled once per start). @default loaded from `config.policy.file` here
   */
  policy?: PolicyEngine;
  /** The MCP server each `/mcp` session runs (`mcp.http`). @default leasehold's tools (sidecar/mcp/server.ts) */
  mcpServer?: McpServerFactory;
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
  /** MCP over HTTP's sessions (`mcp.http`), when on. */
  readonly mcp?: McpHttp | undefined;
  close(): Promise<void>;
}

/**
 * Wires the real dependencies once, from the config: the only place that builds them. Stages:
 * infrastructure (Redis, Vault, audit, adapters; once Redis and Vault answer), identity,
 * services, the HTTP app and the operators' views, then the background loops. A stage that
 * fails closes what the stages before it opened (connections, timers, listeners), then throws.
 */
export async function createSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const { config, log } = opts;
  const id = `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  const infra = await openInfrastructure(config, log, id, { waitForDepsSeconds: opts.waitForDepsSeconds });
  // What to close if a later stage fails, newest first.
  const opened: Array<() => unknown> = [() => closeInfrastructure(infra)];
  const unwind = async () => {
    for (const close of opened.splice(0).reverse())
      await Promise.resolve()
        .then(close)
        .catch(() => undefined);
  };
  try {
    const ids = await wireIdentity(config, infra.redis, log, infra.secrets);
    const svc = await wireServices(config, log, infra, ids, {
      crashHook: opts.crashHook,
      policy: opts.policy,
    });
    opened.push(
      () => svc.rotation.stop(),
      () => svc.adminRotation.stop(),
      () => svc.proxies.close(),
    );
    const adminToken = await loadAdminToken(config.admin.tokenFile);
    // Before any loop runs: a sidecar whose Redis is not the cluster's must not reconcile into it.
    await svc.cluster.check();
    const mcp = await wireMcpHttp(config, log, ids, svc, opts.mcpServer);
    const app = buildApp({
      ...appDeps(config, log, infra, ids, svc, adminToken),
      ...(mcp ? { mcp } : {}),
      checkResponses: opts.checkResponses ?? false,
    });
    opened.push(() => app.close());
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
    opened.push(() => ops.stop());
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
      mcp,
      close: async () => {
        opened.length = 0;
        await svc.proxies.close();
        stopLoops();
        svc.rotation.stop();
        svc.adminRotation.stop();
        await ops.stop();
        await app.close();
        await closeInfrastructure(infra);
      },
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}

/** What the HTTP app takes: the services, the admin token, and the readiness checks. */
function appDeps(
  config: Config,
  log: Logger,
  infra: Infrastructure,
  ids: IdentityParts,
  svc: Services,
  adminToken: string,
): Parameters<typeof buildApp>[0] {
  const checks = readinessChecks(infra, svc.cluster);
  return {
    operators: svc.operators,
    audit: infra.audit,
    auditFiles: [config.audit.file],
    log,
    leases: svc.leaseService,
    resources: svc.resourceService,
    adapters: infra.adapters,
    adminToken,
    ready: () => runReadiness(checks),
    cluster: new ClusterDesk({
      identity: svc.cluster,
      names: { vault: vaultPrefixName(config.vault), redis: redisKeyspaceName(config.redis) },
      audit: infra.audit,
      reconcile: () => svc.reconciler.reconcileAll(),
      log: log.child({ module: "cluster" }),
    }),
    jwks: () => ids.jwks(),
    tokenExchange: (body, checkDelegator) => ids.exchange(body, checkDelegator),
    allowedHosts: config.listen.allowedHosts,
    allowedOrigins: config.listen.allowedOrigins,
    attestor: infra.attestor,
  };
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
      log.error({ err: { message: logText(err) } }, "could not audit the policy reload"),
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
  const warn = (what: string) => (err: unknown) => log.warn({ err: { message: logText(err) } }, what);
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
