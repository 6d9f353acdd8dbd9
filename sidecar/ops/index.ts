// What the other layers use: wire.ts attaches the ops layer, redis.ts instruments its client.
export { type AttachedOps, type AttachOpsDeps, attachOps } from "./attach-ops.js";
export { type AuditTapOptions, createAuditTap } from "./audit-tap.js";
export { InstrumentedCluster, InstrumentedRedis, type RedisCallObserver } from "./instrumented-redis.js";
export { instrumentSecretStore, type VaultCallObserver } from "./instrumented-secret-store.js";
export { createMetrics, type MetricsOptions, type OpsMetrics } from "./metrics.js";
