import { ApprovalStore } from "../approvals/approval-store.js";
import { ClusterIdentity, redisKeyspaceName, vaultPrefixName } from "../cluster/index.js";
import type { Config } from "../config.js";
import { Reaper } from "../leases/index.js";
import type { Logger } from "../logger.js";
import { loadPolicy } from "../policy/index.js";
import { ProxyManager } from "../proxy/index.js";
import { AdminRotation, type CrashPoint, Reconciler, RotationEngine } from "../rotation/index.js";
import {
  type CallerBindingOptions,
  DecisionGate,
  LeaseService,
  OperatorService,
  ResourceService,
} from "../service/index.js";
import type { IdentityParts } from "./identity.js";
import type { Infrastructure } from "./infrastructure.js";
import { logText } from "../util/dependency-error.js";
import type { ProcessTree } from "../attest/types.js";

export type PolicyEngine = Awaited<ReturnType<typeof loadPolicy>>;

/** The request path's services and the loops that keep leases and accounts in order. */
export interface Services {
  readonly policy: PolicyEngine;
  readonly rotation: RotationEngine;
  /** Admin password rotation (`rotation.admin` of each registration; `resources rotate --admin`). */
  readonly adminRotation: AdminRotation;
  readonly leaseService: LeaseService;
  readonly resourceService: ResourceService;
  readonly operators: OperatorService;
  readonly proxies: ProxyManager;
  readonly reconciler: Reconciler;
  readonly reaper: Reaper;
  /** Whether this sidecar's Vault prefix and Redis keyspace form one cluster. */
  readonly cluster: ClusterIdentity;
  /** Starts or stops each resource's local listener to match the registrations. */
  syncProxies(): Promise<void>;
}

/** Pending approvals in Redis, with the config's quorum and per-agent cap. */
function approvalStore(config: Config, infra: Infrastructure): ApprovalStore {
  return new ApprovalStore(infra.redis, infra.prefix, {
    minApprovers: config.approvals.minApprovers,
    maxPendingPerAgent: config.approvals.maxPendingPerAgent,
  });
}

/** Leases bound to the local caller that checked them out (`identity.bindCaller`, issue 22). */
function callerBinding(config: Config, tree: ProcessTree): CallerBindingOptions {
  return { parts: config.identity.bindCaller, onMismatch: config.identity.onCallerMismatch, tree };
}

/** Builds policy, rotation, the lease and resource services, the operators' gate and the listeners. */
export async function wireServices(
  config: Config,
  log: Logger,
  infra: Infrastructure,
  ids: IdentityParts,
  opts: {
    crashHook?: ((point: CrashPoint) => void) | undefined;
    /** The engine of `config.policy.file`, already loaded (serve's preflight); default: loaded here. */
    policy?: PolicyEngine | undefined;
  } = {},
): Promise<Services> {
  const { secrets, leases, catalog, adapters, audit, events, redis, prefix } = infra;
  const policy = opts.policy ?? (await loadPolicy(config.policy.file ? { file: config.policy.file } : {}));
  const cluster = new ClusterIdentity({
    secrets,
    redis,
    redisPrefix: prefix,
    names: { vault: vaultPrefixName(config.vault), redis: redisKeyspaceName(config.redis) },
    log: log.child({ module: "cluster" }),
    audit,
  });
  const rotation = new RotationEngine({
    cluster,
    secrets,
    leases,
    catalog,
    adapters,
    audit,
    events,
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
  const adminRotation = wireAdminRotation(config, log, infra, cluster, opts.crashHook);
  const gate = new DecisionGate({ policy, audit });
  // The checkout response names the resource's local listener; the listeners need the lease service.
  let proxies: ProxyManager | undefined;
  const leaseService = new LeaseService({
    proxyEndpoint: (resource: string) => proxies?.endpointFor(resource),
    leases,
    secrets,
    catalog,
    rotation,
    identity: ids.identity,
    tokens: ids.tokens,
    policy,
    gate,
    dpop: ids.dpop,
    audit,
    events,
    log,
    approvals: approvalStore(config, infra),
    approvalTtlSeconds: config.approvals.ttl,
    ...config.limits, // checkoutsPerMinute, toolCallsPerMinute, catalogReadsPerMinute
    cluster,
    binding: callerBinding(config, infra.processTree),
  });
  const proxyManager = new ProxyManager({
    leases: leaseService,
    events,
    redis,
    prefix,
    audit,
    log: log.child({ module: "proxy" }),
    ...proxySettings(config.proxy),
    attestor: infra.attestor,
    policy,
  });
  proxies = proxyManager;
  const syncProxies = async () => {
    const r = await proxyManager.sync(await catalog.load());
    for (const f of r.failed)
      log.warn({ resource: f.resource, error: f.error }, "proxy listener not running");
  };
  await syncProxies().catch((err: unknown) =>
    log.warn({ err: { message: logText(err) } }, "proxy sync failed"),
  );
  return {
    policy,
    rotation,
    adminRotation,
    leaseService,
    resourceService: new ResourceService({
      secrets,
      leases,
      catalog,
      rotation,
      adminRotation,
      adapters,
      audit,
      log,
      onRegistrationsChanged: () => syncProxies(),
    }),
    operators: new OperatorService({ identity: ids.identity, policy, catalog, audit, gate }),
    proxies: proxyManager,
    reconciler: new Reconciler({
      secrets,
      leases,
      catalog,
      rotation,
      cluster,
      log: log.child({ module: "reconciler" }),
    }),
    reaper: new Reaper({
      leases,
      expire: (resource, leaseId) => leaseService.endLease(resource, leaseId, "expired"),
      intervalMs: config.reaper.intervalMs,
      enabled: () => cluster.state().status === "ok",
      log: log.child({ module: "reaper" }),
    }),
    syncProxies,
    cluster,
  };
}

/** Admin password rotation, with the accounts' rotation settings (backoff, lock TTL, timeout). */
function wireAdminRotation(
  config: Config,
  log: Logger,
  infra: Infrastructure,
  cluster: ClusterIdentity,
  crashHook?: (point: CrashPoint) => void,
): AdminRotation {
  const { secrets, catalog, adapters, audit, events, redis, prefix } = infra;
  return new AdminRotation({
    cluster,
    secrets,
    catalog,
    adapters,
    audit,
    events,
    redis,
    prefix,
    log: log.child({ module: "admin-rotation" }),
    backoff: config.rotation.backoff,
    maxBackoff: config.rotation.maxBackoff,
    lockTtlMs: config.rotation.lockTtl * 1000,
    adapterTimeoutMs: config.rotation.adapterTimeout * 1000,
    crashHook,
  });
}

/** The listeners' settings from the config's `proxy` section. */
function proxySettings(p: Config["proxy"]) {
  return {
    auditStatements: p.auditStatements,
    handshakeTimeoutMs: p.handshakeTimeoutMs,
    maxHandshakes: p.maxHandshakes,
    maxConnectionsPerLease: p.maxConnectionsPerLease,
    tls: p.tls === "off" ? (false as const) : ("self-signed" as const),
    unparseable: p.unparseable,
  };
}
