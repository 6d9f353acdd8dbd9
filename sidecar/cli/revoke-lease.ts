import type { SidecarClient } from "./http-client.js";

/**
 * Revokes one lease by id (`POST /v1/leases/{id}/revoke`): what `leasehold leases revoke ID`
 * and the `r` key of `leasehold leases watch` send. Rejects with the sidecar's ApiError.
 */
export function revokeLease(
  client: Pick<SidecarClient, "request">,
  id: string,
  reason: { reason?: string } = {},
): Promise<unknown> {
  return client.request<unknown>("POST", `/v1/leases/${encodeURIComponent(id)}/revoke`, reason);
}
