import type { LogicalResponse } from "./backend.js";
import { compareGoStrings, sortKeysDeep } from "./http-util.js";

/** `wrap_info` of a wrapped response, in Go struct order. */
export interface WrapInfo {
  token: string;
  accessor: string;
  ttl: number;
  creation_time: string;
  creation_path: string;
  wrapped_accessor?: string;
}

/**
 * `logical.HTTPResponse` in Go field order. `data` keys are sorted (Go map);
 * `mount_type` is written only when given (recent Vault has it, raw KV bodies and 1.14 do not).
 */
export function envelope(
  requestId: string,
  response: LogicalResponse,
  mountType?: string,
  wrapInfo: WrapInfo | null = null,
): Record<string, unknown> {
  const body: Record<string, unknown> = {
    request_id: requestId,
    lease_id: "",
    renewable: false,
    lease_duration: 0,
    data: response.data === null ? null : sortKeysDeep(response.data),
    wrap_info: wrapInfo,
    warnings: response.warnings.length > 0 ? [...response.warnings] : null,
    auth:
      response.auth === null ? null : { ...response.auth, metadata: sortKeysDeep(response.auth.metadata) },
  };
  if (mountType !== undefined) body.mount_type = mountType;
  return body;
}

/**
 * `logical.HTTPSysInjector`: the data keys spliced in before the envelope fields
 * (Go writes them in map order; here sorted, for stable output).
 */
export function injectDataIntoTop(body: Record<string, unknown>): Record<string, unknown> {
  const data = body.data;
  if (typeof data !== "object" || data === null || Object.keys(data).length === 0) return body;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(data).sort(compareGoStrings))
    out[key] = (data as Record<string, unknown>)[key];
  for (const [key, value] of Object.entries(body)) out[key] = value;
  return out;
}
