import type { ClusterDesk } from "../cluster/index.js";
import type { Adapter } from "../../adapters/adapter.js";
import type { CallerAttestor } from "../attest/index.js";
import type { AuditSink } from "../audit/index.js";
import type { ExchangeOutcome } from "../identity/index.js";
import type { Logger } from "../logger.js";
import type { McpHttp } from "../mcp/http-sessions.js";
import type { LeaseService, OperatorService, ResourceService, VerifiedCaller } from "../service/index.js";
import { routeDeclarer } from "./route.js";

/** What `/readyz` answers from: each named check's outcome, and why each failing one failed. */
export interface ReadyReport {
  readonly ok: boolean;
  readonly checks: Record<string, boolean>;
  /** Why each failing check fails (address and cause, never a credential). */
  readonly reasons?: Record<string, string>;
}

/** What buildApp and the handlers of its routes take. */
export interface Deps {
  /** The live audit file(s) `GET /v1/audit` answers from; without them the route is absent. */
  readonly auditFiles?: readonly string[];
  /** Where admin reads of the audit trail are themselves recorded. */
  readonly audit?: AuditSink;
  readonly log: Logger;
  readonly leases: LeaseService;
  readonly resources: ResourceService;
  readonly adapters: ReadonlyMap<string, Adapter<unknown>>;
  readonly adminToken: string;
  /** Operators and DBAs with their own identity JWT, decided by policy; without it, admin token only. */
  readonly operators?: OperatorService;
  readonly ready: () => Promise<ReadyReport>;
  readonly jwks: () => Promise<{ keys: object[] }> | { keys: object[] };
  /** The cluster identity's operator side (`/v1/cluster`); without it those routes answer 404. */
  readonly cluster?: ClusterDesk;
  /** RFC 8693 token exchange (`POST /v1/token-exchange`); without it the route answers 404. */
  /** `checkDelegator` vets the verified delegator before the token is minted. */
  readonly tokenExchange?: (
    body: unknown,
    checkDelegator?: (delegator: VerifiedCaller) => Promise<void>,
  ) => Promise<ExchangeOutcome>;
  /** Host names accepted besides localhost, 127.0.0.1 and [::1]. */
  readonly allowedHosts?: readonly string[];
  /** Origins accepted on requests that carry an Origin header. */
  readonly allowedOrigins?: readonly string[];
  /**
   * Attests the process at the other end of each request's connection (`RequestMeta.caller`);
   * without it requests carry no caller.
   */
  readonly attestor?: CallerAttestor;
  /** MCP over HTTP (`/mcp`, `mcp.http`); without it those routes answer 404. */
  readonly mcp?: McpHttp;
  /**
   * Also write every answer with `JSON.stringify` and fail (500) one its documented schema would
   * change (tests). @default false
   */
  readonly checkResponses?: boolean;
}

/** Declares a route whose handler takes buildApp's deps. */
export const appRoute = routeDeclarer<Deps>("app");
