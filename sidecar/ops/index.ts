export { requireAdminToken } from "./admin-auth.js";
export { type AttachedOps, type AttachOpsDeps, attachOps } from "./attach-ops.js";
export { createAuditTap, type AuditTapOptions } from "./audit-tap.js";
export { createEnricher } from "./enrich.js";
export { type EnrichedEvent, type EventHubOptions, LeaseEventHub } from "./event-hub.js";
export { compareStreamIds, eventsAfter, lastStreamId, recentEvents, toStreamEvent } from "./event-stream.js";
export { ExpiryNotifier, type ExpiryNotifierOptions } from "./expiry-notifier.js";
export { InstrumentedCluster, InstrumentedRedis, type RedisCallObserver } from "./instrumented-redis.js";
export { instrumentSecretStore, type VaultCallObserver } from "./instrumented-secret-store.js";
export { LabelGuard, OVERFLOW_LABEL } from "./label-guard.js";
export {
  type CallResult,
  createMetrics,
  type MetricStateSources,
  type MetricsOptions,
  type OpsMetrics,
} from "./metrics.js";
export { type OpsApp, type OpsRouteDeps, type OpsRoutes, registerOpsRoutes } from "./ops-routes.js";
export { blockingConnection, DEFAULT_BLOCK_MS } from "./redis-connection.js";
export { buildSnapshot, type OpsServices, pendingApprovals, type Snapshot } from "./snapshot.js";
export { createStreamHandler, type StreamRouteDeps } from "./sse-route.js";
export { eventStreamKey, type LeaseStateSource, type StreamEvent } from "./types.js";
export { defaultUiDir, loadUiAssets, UI_SECURITY_HEADERS } from "./ui-assets.js";
export { readSse, type SseMessage } from "./watch/sse-reader.js";
export {
  type WatchOptions,
  type WatchOutput,
  watchCommand,
  watchTargetFromConfig,
} from "./watch/watch-command.js";
export { eventLine, formatCountdown, leaseLine, progressBar, renderScreen } from "./watch/watch-render.js";
export { type WatchEvent, type WatchLease, WatchState } from "./watch/watch-state.js";
export {
  DEFAULT_WEBHOOK_EVENTS,
  WEBHOOK_GROUP,
  WebhookDispatcher,
  type WebhookOptions,
} from "./webhook.js";
export { signWebhook, verifyWebhookSignature, WEBHOOK_HEADERS } from "./webhook-signature.js";
