import type { RedisClient } from "../redis.js";
import { LeaseholdError } from "../errors.js";
import type { LeaseEventType } from "../events/index.js";
import type { LeaseService } from "../service/lease-service.js";
import type { ResourceService, ResourceView } from "../service/resource-service.js";
import { recentEvents } from "./event-stream.js";
import { eventStreamKey, type StreamEvent } from "./types.js";

/** What the ops views read from the services. */
export interface OpsServices {
  readonly leases: Pick<LeaseService, "list" | "getAny" | "listApprovals">;
  readonly resources: Pick<ResourceService, "list" | "show">;
}

/** The first message of the event stream: everything a viewer shows, then events keep it current. */
export interface Snapshot {
  /** The sidecar's clock (RFC 3339), so viewers can correct their countdowns for clock offset. */
  readonly now: string;
  /** Events after this stream id follow the snapshot. */
  readonly after_id: string;
  readonly leases: Awaited<ReturnType<LeaseService["list"]>>["leases"];
  /** More than SNAPSHOT_LEASES leases are active: `leases` holds the first of them by resource. */
  readonly leases_truncated: boolean;
  /** Pending approvals; null when approvals are not enabled. */
  readonly approvals: ApprovalList | null;
  readonly resources: ReadonlyArray<Pick<ResourceView, "name" | "adapter" | "accounts">>;
  /** Recent rotations, rotation failures and quarantines, newest first. */
  readonly recent: readonly StreamEvent[];
}

export const ROTATION_EVENT_TYPES: ReadonlySet<string> = new Set<LeaseEventType>([
  "rotated",
  "rotation_failed",
  "quarantined",
]);

export type ApprovalList = Awaited<ReturnType<LeaseService["listApprovals"]>>["approvals"];

/** The pending approvals, or null when the sidecar has no approval store. */
export async function pendingApprovals(services: OpsServices): Promise<ApprovalList | null> {
  try {
    return (await services.leases.listApprovals("pending")).approvals;
  } catch (err) {
    if (err instanceof LeaseholdError && err.code === "not_found") return null;
    throw err;
  }
}

/** The most leases a snapshot carries; events keep a viewer current beyond them. */
export const SNAPSHOT_LEASES = 10_000;

/** Every active lease, page by page (`GET /v1/leases`' pages), up to SNAPSHOT_LEASES, soonest expiry first. */
async function activeLeases(
  services: OpsServices,
): Promise<{ leases: Snapshot["leases"]; truncated: boolean }> {
  const leases: Array<Snapshot["leases"][number]> = [];
  let cursor: string | undefined;
  do {
    const page = await services.leases.list({ limit: 1000, ...(cursor ? { cursor } : {}) });
    leases.push(...page.leases);
    cursor = page.next_cursor;
  } while (cursor !== undefined && leases.length < SNAPSHOT_LEASES);
  leases.sort((a, b) => a.ttl_seconds - b.ttl_seconds);
  return {
    leases: leases.slice(0, SNAPSHOT_LEASES),
    truncated: cursor !== undefined || leases.length > SNAPSHOT_LEASES,
  };
}

/** Reads the current leases, approvals, account states and recent rotations. */
export async function buildSnapshot(
  services: OpsServices,
  redis: RedisClient,
  prefix: string,
  afterId: string,
): Promise<Snapshot> {
  const [leases, list, approvals, recent] = await Promise.all([
    activeLeases(services),
    services.resources.list(),
    pendingApprovals(services),
    recentEvents(redis, eventStreamKey(prefix), ROTATION_EVENT_TYPES, 25),
  ]);
  const resources: Array<Pick<ResourceView, "name" | "adapter" | "accounts">> = [];
  for (const r of list.resources) {
    // A resource removed meanwhile is simply left out.
    const view = await services.resources.show(r.name).catch(() => null);
    if (view) resources.push({ name: view.name, adapter: view.adapter, accounts: view.accounts });
  }
  return {
    now: new Date().toISOString(),
    after_id: afterId,
    leases: leases.leases,
    leases_truncated: leases.truncated,
    approvals,
    resources,
    recent,
  };
}
