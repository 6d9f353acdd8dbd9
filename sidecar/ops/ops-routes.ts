import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyInstance, RawServerDefault } from "fastify";
import { createAuthenticator, registerRoutes, routesOf } from "../http/index.js";
import type { RedisClient } from "../redis.js";
import type { Logger } from "../logger.js";
import { createEnricher } from "./enrich.js";
import { LeaseEventHub } from "./event-hub.js";
import type { OpsMetrics } from "./metrics.js";
import type { OpsServices } from "./snapshot.js";
import type { StreamRouteDeps } from "./sse-route.js";
import { loadUiAssets, type UiAsset } from "./ui-assets.js";

export interface OpsRouteDeps {
  readonly adminToken: string;
  readonly services: OpsServices;
  /** The sidecar's shared connection (non-blocking reads). */
  readonly redis: RedisClient;
  /** Opens a dedicated connection for the event hub's XREAD BLOCK. */
  readonly connect: () => RedisClient;
  readonly prefix: string;
  readonly metrics: OpsMetrics;
  readonly log: Logger;
  /** SSE heartbeat, ms. @default 15000 */
  readonly heartbeatMs?: number;
  /** Event streams open at once. @default 64 */
  readonly maxStreamClients?: number;
  /** Require the admin token on /metrics. @default false (the Host guard keeps it local) */
  readonly metricsRequireToken?: boolean;
  /** Where the dashboard's files are. @default next to the module, else sidecar/ops/ui */
  readonly uiDir?: string;
}

/** The app `buildApp` returns (its logger is pino's). */
export type OpsApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>;

export interface OpsRoutes {
  readonly hub: LeaseEventHub;
}

/**
 * Adds the ops routes of the route table (`GET /metrics`, `GET /v1/leases/stream`, the dashboard
 * at `/ui`) to the app. Routes inherit the app's Host/Origin guard and error shape; the hub stops
 * when the app closes.
 */
export async function registerOpsRoutes(app: OpsApp, d: OpsRouteDeps): Promise<OpsRoutes> {
  // A sidecar without the dashboard's files (an image that copied dist/ only) still serves the
  // API, metrics and the stream; /ui then answers 404 saying why.
  const assets = await loadUiAssets(d.uiDir).catch((err: unknown) => {
    d.log.warn({ err: { message: (err as Error).message } }, "dashboard files not found; /ui is off");
    return new Map<string, UiAsset>();
  });
  const hub = new LeaseEventHub({
    connect: d.connect,
    prefix: d.prefix,
    enrich: createEnricher(d.services),
    log: d.log.child({ module: "event-hub" }),
  });
  app.addHook("onClose", async () => hub.stop());
  const stream: StreamRouteDeps = {
    services: d.services,
    hub,
    redis: d.redis,
    prefix: d.prefix,
    metrics: d.metrics,
    log: d.log,
    heartbeatMs: d.heartbeatMs,
    maxClients: d.maxStreamClients,
  };
  const authenticate = createAuthenticator({
    adminToken: d.adminToken,
    adminIfConfigured: d.metricsRequireToken,
  });
  registerRoutes(app, routesOf("ops"), { metrics: d.metrics, assets, stream }, authenticate);
  return { hub };
}
