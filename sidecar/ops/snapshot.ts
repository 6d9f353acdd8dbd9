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

/** Reads the current leases, approvals, account states and recent rotations. */
export async function buildSnapshot(
  services: OpsServices,
  redis: RedisClient,
  prefix: string,
  afterId: string,
): Promise<Snapshot> {
  const [leases, list, approvals, recent] = await Promise.all([
    services.leases.list({}),
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
    approvals,
    resources,
    recent,
  };
}
