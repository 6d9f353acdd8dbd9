import { LeaseholdError } from "../errors.js";
import type { LeasePosition, LeaseStore } from "../leases/index.js";
import { DEFAULT_LEASE_PAGE, MAX_LEASE_PAGE } from "../openapi/request-schemas.js";
import { type LeaseView, leaseView } from "./lease-view.js";

export interface LeaseFilter {
  readonly resource?: string | undefined;
  readonly agent?: string | undefined;
  readonly state?: string | undefined;
  /** Leases per page. @default DEFAULT_LEASE_PAGE */
  readonly limit?: number | undefined;
  /** The `next_cursor` of the previous page. */
  readonly cursor?: string | undefined;
}

function encodeCursor(pos: LeasePosition): string {
  return Buffer.from(JSON.stringify(pos)).toString("base64url");
}

/** @throws 400 invalid_request for anything that is not a cursor this list gave */
function decodeCursor(cursor: string | undefined): LeasePosition | undefined {
  if (cursor === undefined) return undefined;
  let pos: unknown;
  try {
    pos = JSON.parse(Buffer.from(cursor, "base64url").toString());
  } catch {
    pos = undefined;
  }
  if (
    !Array.isArray(pos) ||
    pos.length !== 4 ||
    !pos.every((p) => typeof p === "string" && p.length <= 200) ||
    !["i", "d", "z"].includes(pos[1] as string) ||
    !/^-?\d*(\.\d+)?(e[+-]?\d+)?$/i.test(pos[2] as string)
  ) {
    throw new LeaseholdError("invalid_request", "cursor: not a cursor of this list");
  }
  return pos as unknown as LeasePosition;
}

/** Operators' reads of leases: any one lease, or the active ones with their time left. */
export class LeaseQueries {
  constructor(private readonly leases: LeaseStore) {}

  /** @throws 404 not_found */
  async getAny(leaseId: string): Promise<LeaseView> {
    const resource = await this.leases.resourceOf(leaseId);
    const lease = resource ? await this.leases.get(resource, leaseId) : null;
    if (!lease) throw new LeaseholdError("not_found", "no such lease");
    return leaseView(lease);
  }

  /**
   * One page of the active leases matching the filter (ended leases are not listed), by
   * resource, soonest expiry first within a resource (the page itself sorted soonest first), with
   * the cursor of the next page when there is one. One Redis round trip per page.
   * @throws 400 invalid_request for a cursor this list did not give
   */
  async list(
    filter: LeaseFilter,
  ): Promise<{ leases: Array<LeaseView & { ttl_seconds: number }>; next_cursor?: string }> {
    const after = decodeCursor(filter.cursor);
    if (filter.state === "ended") return { leases: [] };
    const [now, page] = await Promise.all([
      this.leases.now(),
      this.leases.listPage({
        resource: filter.resource,
        agent: filter.agent,
        limit: Math.min(filter.limit ?? DEFAULT_LEASE_PAGE, MAX_LEASE_PAGE),
        after,
      }),
    ]);
    const leases = page.leases
      .sort((a, b) => a.expires_at - b.expires_at)
      // Into the fresh view, not `{ ...view, ttl_seconds }` (a spread followed by a field: µs per lease in Node 20).
      .map((l) =>
        Object.assign(leaseView(l), { ttl_seconds: Math.max(0, Math.round((l.expires_at - now) / 1000)) }),
      );
    return page.next ? { leases, next_cursor: encodeCursor(page.next) } : { leases };
  }
}
