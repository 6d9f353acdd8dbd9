import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { AuditRecord } from "../audit/index.js";
import type { LeaseEvent } from "../events/index.js";
import type { LeaseRecord } from "../leases/index.js";
import { LabelGuard } from "./label-guard.js";
import type { LeaseStateSource } from "./types.js";

/** What the scrape-time gauges read, once per scrape. */
export interface MetricStateSources {
  readonly leases: LeaseStateSource;
  /** Pending approvals (each names its resource); absent when approvals are off. */
  readonly pendingApprovals?: () => Promise<ReadonlyArray<{ readonly resource: string }>>;
}

export interface MetricsOptions {
  /** The registry to register into. @default a new Registry of its own */
  readonly registry?: Registry;
  /** Node process metrics (CPU, memory, event loop). @default true */
  readonly processMetrics?: boolean;
  /** Most distinct resource names kept as label values; more fold into `_other`. @default 500 */
  readonly maxResources?: number;
  /** How long one read of the lease state serves the gauges, ms. @default 1000 */
  readonly stateCacheMs?: number;
}

/** Result of one Vault or Redis call, as counted. `conflict` is a CAS refusal, not a fault. */
export type CallResult = "ok" | "conflict" | "error";

/** The sidecar's Prometheus metrics; every label value is bounded (no lease or agent ids). */
export interface OpsMetrics {
  readonly registry: Registry;
  /** Feed every audit record here (AuditLog.open's onRecord). */
  observeAudit(rec: AuditRecord): void;
  /** Feed every lease this sidecar ends here (the lease event channel's "ended" does). */
  observeLeaseEnded(lease: LeaseRecord): void;
  /** Subscribe this to the lease event channel: ended leases and expiry notices. */
  observeLeaseEvent(event: LeaseEvent): void;
  observeVaultCall(op: string, seconds: number, result: CallResult): void;
  observeRedisCall(command: string, seconds: number, result: CallResult): void;
  observeWebhook(result: "delivered" | "failed"): void;
  observeExpiringSoon(resource: string): void;
  streamClientsChanged(delta: 1 | -1): void;
  /** Registers the gauges read from Redis at scrape time (once). */
  addStateSources(sources: MetricStateSources): void;
  /** The exposition text and its content type. */
  render(): Promise<{ contentType: string; body: string }>;
}

const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400];
const LAG_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];
const CALL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const ROTATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const MAX_OPEN_ROTATIONS = 10_000;

/** Runs `fetch` at most once per `ttlMs`, so the gauges of one scrape share one read. */
function cachedAsync<T>(fetch: () => Promise<T>, ttlMs: number): () => Promise<T> {
  let at = 0;
  let value: Promise<T> | undefined;
  return () => {
    const now = Date.now();
    if (!value || now - at >= ttlMs) {
      at = now;
      value = fetch();
      value.catch(() => {
        value = undefined;
      });
    }
    return value;
  };
}

interface LeaseState {
  readonly up: boolean;
  readonly perResource: Map<
    string,
    { active: number; soonest?: number; oldestAge?: number; states: Map<string, number> }
  >;
  readonly approvals: Map<string, number>;
}

/** The event-driven series, one registration each. */
function eventSeries(registers: Registry[]) {
  return {
    checkouts: new Counter({
      name: "leasehold_checkouts_total",
      help: "Checkout decisions by resource and decision (allow, deny, approval_required).",
      labelNames: ["resource", "decision"] as const,
      registers,
    }),
    approvalDecisions: new Counter({
      name: "leasehold_approval_decisions_total",
      help: "Human decisions on pending approvals (approved, denied).",
      labelNames: ["resource", "decision"] as const,
      registers,
    }),
    leaseDuration: new Histogram({
      name: "leasehold_lease_duration_seconds",
      help: "How long leases lasted, from issue to end, by end reason (checkin, expired, revoked).",
      labelNames: ["resource", "reason"] as const,
      buckets: DURATION_BUCKETS,
      registers,
    }),
    reaperLag: new Histogram({
      name: "leasehold_reaper_lag_seconds",
      help: "Delay between a lease's expires_at and its end by the reaper (Redis clock).",
      labelNames: ["resource"] as const,
      buckets: LAG_BUCKETS,
      registers,
    }),
    rotations: new Counter({
      name: "leasehold_rotations_total",
      help: "Rotation outcomes (succeeded, failed, quarantined).",
      labelNames: ["resource", "result"] as const,
      registers,
    }),
    rotationDuration: new Histogram({
      name: "leasehold_rotation_duration_seconds",
      help: "Time from rotation start to success or failure, for rotations started by this sidecar.",
      labelNames: ["resource", "result"] as const,
      buckets: ROTATION_BUCKETS,
      registers,
    }),
    vaultDuration: new Histogram({
      name: "leasehold_vault_request_duration_seconds",
      help: "Vault calls by operation and result (ok, conflict, error).",
      labelNames: ["op", "result"] as const,
      buckets: CALL_BUCKETS,
      registers,
    }),
    vaultErrors: new Counter({
      name: "leasehold_vault_errors_total",
      help: "Vault calls that failed (faults, not CAS conflicts).",
      labelNames: ["op"] as const,
      registers,
    }),
    redisDuration: new Histogram({
      name: "leasehold_redis_command_duration_seconds",
      help: "Redis commands by command name and result.",
      labelNames: ["command", "result"] as const,
      buckets: CALL_BUCKETS,
      registers,
    }),
    redisErrors: new Counter({
      name: "leasehold_redis_errors_total",
      help: "Redis commands that failed.",
      labelNames: ["command"] as const,
      registers,
    }),
    webhooks: new Counter({
      name: "leasehold_webhook_deliveries_total",
      help: "Alert webhook deliveries (delivered, failed after retries).",
      labelNames: ["result"] as const,
      registers,
    }),
    expiringSoon: new Counter({
      name: "leasehold_expiring_soon_total",
      help: "expiring_soon events emitted by this sidecar.",
      labelNames: ["resource"] as const,
      registers,
    }),
    callerMismatches: new Counter({
      name: "leasehold_caller_mismatch_total",
      help: "Uses of a lease bound to its local caller by another caller, by resource and the first part that differed (uid, cgroup, process, exe, unattested).",
      labelNames: ["resource", "part"] as const,
      registers,
    }),
    auditDropped: new Counter({
      name: "leasehold_audit_dropped_records_total",
      help: "Statement records the audit log dropped, unwritten, because its queue was full (each drop is also told by an audit_dropped record).",
      registers,
    }),
    streamClients: new Gauge({
      name: "leasehold_event_stream_clients",
      help: "Operators connected to /v1/leases/stream on this sidecar.",
      registers,
    }),
  };
}

type EventSeries = ReturnType<typeof eventSeries>;

/**
 * Counts decisions and rotation outcomes from audit records, and times the rotations this
 * sidecar started (from `rotation_started` to its outcome, at most MAX_OPEN_ROTATIONS open).
 */
function auditObserver(s: EventSeries, resources: LabelGuard): (rec: AuditRecord) => void {
  const openRotations = new Map<string, number>();
  const rotationKey = (r: AuditRecord) => `${r.resource ?? ""}\u0000${r.account ?? ""}`;
  const endRotation = (rec: AuditRecord, result: "succeeded" | "failed") => {
    s.rotations.inc({ resource: resources.value(rec.resource), result });
    const key = rotationKey(rec);
    const started = openRotations.get(key);
    if (started === undefined) return;
    openRotations.delete(key);
    const seconds = (Date.parse(rec.time) - started) / 1000;
    if (seconds >= 0)
      s.rotationDuration.observe({ resource: resources.value(rec.resource), result }, seconds);
  };
  return (rec) => {
    const resource = resources.value(rec.resource);
    switch (rec.event) {
      case "decision":
        if (rec.scope === "checkout" && rec.decision) s.checkouts.inc({ resource, decision: rec.decision });
        else if (rec.scope === "approved" || rec.scope === "denied")
          s.approvalDecisions.inc({ resource, decision: rec.scope });
        break;
      case "rotation_started":
        if (openRotations.size >= MAX_OPEN_ROTATIONS) {
          const first = openRotations.keys().next();
          if (!first.done) openRotations.delete(first.value);
        }
        openRotations.set(rotationKey(rec), Date.parse(rec.time));
        break;
      case "rotation_succeeded":
        endRotation(rec, "succeeded");
        break;
      case "rotation_failed":
        endRotation(rec, "failed");
        break;
      case "quarantine":
        s.rotations.inc({ resource, result: "quarantined" });
        break;
      case "caller_mismatch":
        s.callerMismatches.inc({ resource, part: rec.scope ?? "unknown" });
        break;
      case "admin":
        if (rec.scope === "audit_dropped" && rec.dropped) s.auditDropped.inc(rec.dropped);
        break;
      default:
        break;
    }
  };
}

/** Lease durations by end reason, and the reaper's lag behind expires_at for expired leases. */
function leaseEndObserver(s: EventSeries, resources: LabelGuard): (lease: LeaseRecord) => void {
  return (lease) => {
    if (lease.ended_at === undefined) return;
    const resource = resources.value(lease.resource);
    const reason = lease.end_reason ?? "unknown";
    s.leaseDuration.observe({ resource, reason }, Math.max(0, lease.ended_at - lease.issued_at) / 1000);
    if (reason === "expired")
      s.reaperLag.observe({ resource }, Math.max(0, lease.ended_at - lease.expires_at) / 1000);
  };
}

/**
 * Creates the metrics (own Registry unless one is given). Event-driven counters are fed by
 * `observe*`; gauges about current state are read from Redis on each scrape once
 * `addStateSources` was called.
 */
export function createMetrics(opts: MetricsOptions = {}): OpsMetrics {
  const registry = opts.registry ?? new Registry();
  const registers = [registry];
  if (opts.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const resources = new LabelGuard(opts.maxResources ?? 500);
  const commands = new LabelGuard(100);
  const vaultOps = new LabelGuard(20);
  const s = eventSeries(registers);
  const observeLeaseEnded = leaseEndObserver(s, resources);
  const observeExpiringSoon = (resource: string) =>
    s.expiringSoon.inc({ resource: resources.value(resource) });
  let stateAdded = false;

  return {
    registry,
    observeAudit: auditObserver(s, resources),
    observeLeaseEnded,
    observeExpiringSoon,
    observeLeaseEvent(event) {
      if (event.type === "ended") observeLeaseEnded(event.lease);
      else if (event.type === "expiring_soon") observeExpiringSoon(event.lease.resource);
    },
    observeVaultCall(op, seconds, result) {
      const label = vaultOps.value(op);
      s.vaultDuration.observe({ op: label, result }, seconds);
      if (result === "error") s.vaultErrors.inc({ op: label });
    },
    observeRedisCall(command, seconds, result) {
      const label = commands.value(command.toLowerCase());
      s.redisDuration.observe({ command: label, result }, seconds);
      if (result === "error") s.redisErrors.inc({ command: label });
    },
    observeWebhook(result) {
      s.webhooks.inc({ result });
    },
    streamClientsChanged(delta) {
      s.streamClients.inc(delta);
    },
    addStateSources(sources) {
      if (stateAdded) return;
      stateAdded = true;
      addStateGauges(registers, resources, sources, opts.stateCacheMs ?? 1000);
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/** One read of the lease state for the gauges of a scrape; `up: false` when Redis failed. */
async function readLeaseState(sources: MetricStateSources): Promise<LeaseState> {
  const perResource: LeaseState["perResource"] = new Map();
  const approvals = new Map<string, number>();
  try {
    const now = await sources.leases.now();
    const names = await sources.leases.resources();
    // One small script per resource, all sent at once: counts, never the leases themselves.
    const stats = await Promise.all(names.map((name) => sources.leases.resourceStats(name)));
    names.forEach((name, i) => {
      const st = stats[i];
      if (!st) return;
      perResource.set(name, {
        active: st.active,
        ...(st.soonest_expires_at === undefined ? {} : { soonest: (st.soonest_expires_at - now) / 1000 }),
        ...(st.oldest_issued_at === undefined ? {} : { oldestAge: (now - st.oldest_issued_at) / 1000 }),
        states: new Map(Object.entries(st.accounts)),
      });
    });
    for (const a of (await sources.pendingApprovals?.()) ?? [])
      approvals.set(a.resource, (approvals.get(a.resource) ?? 0) + 1);
    return { up: true, perResource, approvals };
  } catch {
    return { up: false, perResource, approvals };
  }
}

function addStateGauges(
  registers: Registry[],
  resources: LabelGuard,
  sources: MetricStateSources,
  cacheMs: number,
): void {
  const read = cachedAsync(() => readLeaseState(sources), cacheMs);

  new Gauge({
    name: "leasehold_state_up",
    help: "1 when the last scrape could read lease state from Redis, else 0.",
    registers,
    async collect() {
      this.set((await read()).up ? 1 : 0);
    },
  });
  new Gauge({
    name: "leasehold_leases_active",
    help: "Active leases by resource.",
    labelNames: ["resource"] as const,
    registers,
    async collect() {
      const s = await read();
      this.reset();
      for (const [name, r] of s.perResource) this.inc({ resource: resources.value(name) }, r.active);
    },
  });
  new Gauge({
    name: "leasehold_lease_soonest_expiry_seconds",
    help: "Seconds until the soonest-expiring active lease of a resource expires (negative: overdue).",
    labelNames: ["resource"] as const,
    registers,
    async collect() {
      const s = await read();
      this.reset();
      for (const [name, r] of s.perResource)
        if (r.soonest !== undefined) this.set({ resource: resources.value(name) }, r.soonest);
    },
  });
  new Gauge({
    name: "leasehold_lease_oldest_age_seconds",
    help: "Age of the oldest active lease of a resource (since issue).",
    labelNames: ["resource"] as const,
    registers,
    async collect() {
      const s = await read();
      this.reset();
      for (const [name, r] of s.perResource)
        if (r.oldestAge !== undefined) this.set({ resource: resources.value(name) }, r.oldestAge);
    },
  });
  new Gauge({
    name: "leasehold_accounts",
    help: "Managed accounts by resource and state (available: free for a checkout now; reserved: held for a checkout in progress, a few seconds at most; leased, rotating, quarantined).",
    labelNames: ["resource", "state"] as const,
    registers,
    async collect() {
      const s = await read();
      this.reset();
      for (const [name, r] of s.perResource) {
        for (const state of ["available", "reserved", "leased", "rotating", "quarantined"])
          this.inc({ resource: resources.value(name), state }, r.states.get(state) ?? 0);
      }
    },
  });
  new Gauge({
    name: "leasehold_accounts_quarantined",
    help: "Quarantined accounts by resource (rotation kept failing; never handed out).",
    labelNames: ["resource"] as const,
    registers,
    async collect() {
      const s = await read();
      this.reset();
      for (const [name, r] of s.perResource)
        this.inc({ resource: resources.value(name) }, r.states.get("quarantined") ?? 0);
    },
  });
  if (sources.pendingApprovals) {
    new Gauge({
      name: "leasehold_approvals_pending",
      help: "Checkout requests waiting for a human approval, by resource.",
      labelNames: ["resource"] as const,
      registers,
      async collect() {
        const s = await read();
        this.reset();
        // Every known resource gets a series, so "no pending approvals" reads as 0, not as absent.
        for (const name of s.perResource.keys()) this.inc({ resource: resources.value(name) }, 0);
        for (const [name, n] of s.approvals) this.inc({ resource: resources.value(name) }, n);
      },
    });
  }
}
