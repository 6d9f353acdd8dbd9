import { parseGoBool } from "./go-format.js";
import { type HttpReply, emptyReply, errorReply, jsonReply } from "./http-util.js";

/** The Vault version this server claims to be (a recent one: `mount_type`, "invalid token"). */
export const VAULT_VERSION = "1.21.1";
const BUILD_DATE = "2025-11-18T13:04:32Z";

/** What the unauthenticated status endpoints report. */
export interface ServerStatus {
  readonly sealed: boolean;
  readonly clusterName: string;
  readonly clusterId: string;
  readonly storageType: string;
  readonly now: number;
}

const CODE_PARAMS = {
  activecode: 200,
  standbycode: 429,
  drsecondarycode: 472,
  performancestandbycode: 473,
  sealedcode: 503,
  uninitcode: 501,
  haunhealthycode: 474,
  removedcode: 530,
} as const;

/**
 * `GET|HEAD /v1/sys/health` (`http/sys_health.go`): this node is always initialized
 * and active, so only `sealedcode` and `activecode` matter; a bad code or bool is a
 * 400. The body is the same on every status; HEAD has none.
 */
export function healthReply(method: string, query: URLSearchParams, status: ServerStatus): HttpReply {
  if (method !== "GET" && method !== "HEAD") return errorReply(405, []);
  const codes: Record<string, number> = { ...CODE_PARAMS };
  for (const name of Object.keys(CODE_PARAMS)) {
    const value = query.get(name);
    if (value === null || value === "") continue;
    if (!/^[-+]?\d+$/.test(value)) return errorReply(400, []);
    codes[name] = Number.parseInt(value, 10);
  }
  for (const name of ["standbyok", "perfstandbyok"]) {
    const value = query.get(name);
    if (value !== null && value !== "" && parseGoBool(value) === undefined) return errorReply(400, []);
  }
  const code = (status.sealed ? codes.sealedcode : codes.activecode) ?? 200;
  if (method === "HEAD") return emptyReply(code);
  const body: Record<string, unknown> = {
    initialized: true,
    sealed: status.sealed,
    // A sealed core reports standby (vault/core.go sets it again on seal).
    standby: status.sealed,
    performance_standby: false,
    replication_performance_mode: "disabled",
    replication_dr_mode: "disabled",
    server_time_utc: Math.floor(status.now / 1000),
    version: VAULT_VERSION,
    enterprise: false,
  };
  if (!status.sealed) {
    body.cluster_name = status.clusterName;
    body.cluster_id = status.clusterId;
  }
  body.echo_duration_ms = 0;
  body.clock_skew_ms = 0;
  body.replication_primary_canary_age_ms = 0;
  return jsonReply(code, body);
}

/** `GET /v1/sys/seal-status`: a bare object, always 200; a dev server has t=1, n=1. */
export function sealStatusReply(method: string, status: ServerStatus): HttpReply {
  if (method !== "GET") return errorReply(405, []);
  const body: Record<string, unknown> = {
    type: "shamir",
    initialized: true,
    sealed: status.sealed,
    t: 1,
    n: 1,
    progress: 0,
    nonce: "",
    version: VAULT_VERSION,
    build_date: BUILD_DATE,
    migration: false,
  };
  if (!status.sealed) {
    body.cluster_name = status.clusterName;
    body.cluster_id = status.clusterId;
  }
  body.recovery_seal = false;
  body.storage_type = status.storageType;
  return jsonReply(200, body);
}
