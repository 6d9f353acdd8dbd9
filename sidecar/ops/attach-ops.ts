import type { LeaseEventChannel } from "../events/index.js";
import type { Logger } from "../logger.js";
import type { RedisClient } from "../redis.js";
import { ExpiryNotifier } from "./expiry-notifier.js";
import type { OpsMetrics } from "./metrics.js";
import type { OpsConfig } from "../config.js";
import { type OpsApp, type OpsRoutes, registerOpsRoutes } from "./ops-routes.js";
import { blockingConnection } from "./redis-connection.js";
import { type OpsServices, pendingApprovals } from "./snapshot.js";
import type { LeaseStateSource } from "./types.js";
import { WebhookDispatcher } from "./webhook.js";

export interface AttachOpsDeps {
  readonly config: OpsConfig;
  readonly adminToken: string;
  readonly leaseService: OpsServices["leases"];
  readonly resourceService: OpsServices["resources"];
  /** The lease store: state gauges, expiring leases. */
  readonly leases: LeaseStateSource;
  /** The channel the sidecar's lease events are published on; the metrics subscribe to it and expiry notices go through it. */
  readonly events: LeaseEventChannel;
  /** The sidecar's shared connection (server, Sentinel or Cluster). */
  readonly redis: RedisClient;
  /** Opens a dedicated connection for blocking reads. @default blockingConnection(redis) */
  readonly connect?: () => RedisClient;
  readonly prefix: string;
  readonly metrics: OpsMetrics;
  readonly log: Logger;
  /** This sidecar's id (its name in the webhook consumer group). */
  readonly sidecarId: string;
  /** Run the expiry notifier and the webhook. @default true */
  readonly background?: boolean;
}

export interface AttachedOps {
  readonly routes: OpsRoutes;
  readonly events: LeaseEventChannel;
  readonly notifier: ExpiryNotifier;
  readonly webhook: WebhookDispatcher | undefined;
  stop(): Promise<void>;
}

/**
 * Everything operators watch, attached to a built app in one call: metrics (state gauges and
 * lease-end observations), `/metrics`, `/v1/leases/stream`, `/ui`, `expiring_soon` notices and
 * the alert webhook. Call before `listen`; `stop()` before closing the Redis connection.
 */
export async function attachOps(app: OpsApp, d: AttachOpsDeps): Promise<AttachedOps> {
  const log = d.log.child({ module: "ops" });
  const services: OpsServices = { leases: d.leaseService, resources: d.resourceService };
  const connect = d.connect ?? (() => blockingConnection(d.redis));
  d.metrics.addStateSources({
    leases: d.leases,
    pendingApprovals: async () => (await pendingApprovals(services)) ?? [],
  });
  const events = d.events;
  const unsubscribe = events.subscribe((e) => d.metrics.observeLeaseEvent(e));
  const routes = await registerOpsRoutes(app, {
    adminToken: d.adminToken,
    services,
    redis: d.redis,
    connect,
    prefix: d.prefix,
    metrics: d.metrics,
    log,
    heartbeatMs: d.config.heartbeatMs,
    metricsRequireToken: d.config.metricsRequireToken,
  });
  const notifier = new ExpiryNotifier({
    leases: d.leases,
    events,
    redis: d.redis,
    prefix: d.prefix,
    leadSeconds: d.config.expiringSoonSeconds,
    intervalMs: d.config.expiringSoonIntervalMs,
    log,
  });
  const webhook = d.config.webhook
    ? new WebhookDispatcher({
        connect,
        prefix: d.prefix,
        url: d.config.webhook.url,
        secret: d.config.webhook.secret,
        events: d.config.webhook.events,
        consumer: d.sidecarId,
        log,
        metrics: d.metrics,
      })
    : undefined;
  if (d.background ?? true) {
    notifier.start();
    webhook?.start();
  }
  return {
    routes,
    events,
    notifier,
    webhook,
    stop: async () => {
      unsubscribe();
      notifier.stop();
      await webhook?.stop();
      await routes.hub.stop();
    },
  };
}
