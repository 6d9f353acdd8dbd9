import type { ApprovalStore } from "../approvals/approval-store.js";
import type { AuditSink } from "../audit/index.js";
import type { LeaseEventPublisher } from "../events/index.js";
import type { LeaseStore } from "../leases/index.js";
import type { Logger } from "../logger.js";
import type { ResourceCatalog } from "../resources/catalog.js";
import type { RotationEngine } from "../rotation/index.js";
import type { SecretStore } from "../secrets/index.js";
import { AgentCatalog } from "./agent-catalog.js";
import { AgentToolCalls } from "./agent-tool-calls.js";
import { ApprovalDesk } from "./approvals.js";
import type { CallerBindingOptions } from "./caller-binding.js";
import { Checkout, type ProxyEndpointInfo } from "./checkout.js";
import { DecisionGate } from "./decision-gate.js";
import { LeaseAuth } from "./lease-auth.js";
import { LeaseEnd } from "./lease-end.js";
import { LeaseQueries } from "./lease-queries.js";
import { LeaseUse } from "./lease-use.js";
import type { ClusterPort, DpopPort, IdentityPort, LeaseTokenPort, PolicyPort } from "./ports.js";
import { TaskTeardown } from "./task-teardown.js";

export interface LeaseServiceOptions {
  leases: LeaseStore;
  secrets: SecretStore;
  catalog: ResourceCatalog;
  rotation: RotationEngine;
  identity: IdentityPort;
  tokens: LeaseTokenPort;
  policy: PolicyPort;
  /** DPoP proof verification; without it, a proof or a bound token is refused. */
  dpop?: DpopPort;
  audit: AuditSink;
  /** Where lease events are published (issued, renewed, ended). */
  events: LeaseEventPublisher;
  log: Logger;
  /** Pending approvals; without it, an approval_required decision is a denial. */
  approvals?: ApprovalStore;
  /** How long an approval request stays open, seconds. @default 900 */
  approvalTtlSeconds?: number;
  /** Where agents connect to a resource's local listener (checkout response `proxy`). */
  proxyEndpoint?: (resource: string) => ProxyEndpointInfo | undefined;
  /** Checkouts one agent may request per minute; 0 or absent = no limit. */
  checkoutsPerMinute?: number;
  /** Tool calls without a lease one agent may report per minute; 0 or absent = no limit. */
  toolCallsPerMinute?: number;
  /** Catalog reads one agent may make per minute; 0 or absent = no limit. */
  catalogReadsPerMinute?: number;
  /** The cluster identity; without it checkouts never check it (in-process tests). */
  cluster?: ClusterPort;
  /** Clock for policy context (hour_utc), waits and approval times. @default Date.now */
  now?: () => number;
  /** The decision gate; built from `policy` and `audit` when absent (OperatorService shares one). */
  gate?: DecisionGate;
  /** Leases bound to the local caller that checked them out (`identity.bindCaller`); absent: none. */
  binding?: CallerBindingOptions;
}

/**
 * The lease lifecycle seen from the request path, wired from its use cases: checkout (with
 * approvals' redemption), lease use (reveal, renew, tool calls, proxy logins), lease end
 * (check-in, revocation, expiry), task teardown, approvals, the agent's catalog and tool calls without a
 * lease, and operators' reads. A thin facade: each method is
 * its use case's.
 */
export class LeaseService {
  readonly gate: DecisionGate;
  readonly auth: LeaseAuth;
  readonly checkouts: Checkout;
  readonly use: LeaseUse;
  readonly end: LeaseEnd;
  readonly approvalDesk: ApprovalDesk;
  readonly queries: LeaseQueries;
  readonly tasks: TaskTeardown;
  readonly agentCatalog: AgentCatalog;
  readonly agentToolCalls: AgentToolCalls;

  constructor(o: LeaseServiceOptions) {
    const now = o.now ?? Date.now;
    const { leases, secrets, catalog, audit, events } = o;
    this.gate = o.gate ?? new DecisionGate({ policy: o.policy, audit });
    this.auth = new LeaseAuth({
      tokens: o.tokens,
      leases,
      dpop: o.dpop,
      audit,
      binding: o.binding,
      events,
      // A caller mismatch under `onCallerMismatch: revoke` ends the lease the way an operator would.
      revoke: (resource, id, requestId, why) => this.end.endLease(resource, id, "revoked", requestId, why),
    });
    this.end = new LeaseEnd({ leases, catalog, rotation: o.rotation, audit, events, auth: this.auth });
    this.use = new LeaseUse({
      leases,
      secrets,
      catalog,
      audit,
      events,
      auth: this.auth,
      gate: this.gate,
      now,
    });
    this.checkouts = new Checkout({
      ...o,
      auth: this.auth,
      gate: this.gate,
      end: this.end,
      approvalTtlSeconds: o.approvalTtlSeconds ?? 900,
      now,
    });
    this.approvalDesk = new ApprovalDesk({
      approvals: o.approvals,
      identity: o.identity,
      leases,
      audit,
      auth: this.auth,
      checkout: this.checkouts,
      now,
    });
    this.queries = new LeaseQueries(leases);
    this.tasks = new TaskTeardown({ identity: o.identity, leases, end: this.end, audit });
    const agentDeps = { identity: o.identity, auth: this.auth, audit, leases };
    this.agentCatalog = new AgentCatalog({
      ...agentDeps,
      catalog,
      policy: o.policy,
      proxyEndpoint: o.proxyEndpoint,
      perMinute: o.catalogReadsPerMinute,
      log: o.log.child({ module: "catalog" }),
    });
    this.agentToolCalls = new AgentToolCalls({
      ...agentDeps,
      perMinute: o.toolCallsPerMinute,
      cluster: o.cluster,
    });
  }

  readonly checkout: Checkout["checkout"] = (...a) => this.checkouts.checkout(...a);
  readonly checkoutAs: Checkout["checkoutAs"] = (...a) => this.checkouts.checkoutAs(...a);
  readonly authenticate: LeaseAuth["authenticate"] = (...a) => this.auth.authenticate(...a);
  readonly getOwn: LeaseUse["getOwn"] = (...a) => this.use.getOwn(...a);
  readonly credential: LeaseUse["credential"] = (...a) => this.use.credential(...a);
  readonly renew: LeaseUse["renew"] = (...a) => this.use.renew(...a);
  readonly toolCall: LeaseUse["toolCall"] = (...a) => this.use.toolCall(...a);
  readonly proxyCredential: LeaseUse["proxyCredential"] = (...a) => this.use.proxyCredential(...a);
  readonly tokenVerifier: LeaseUse["tokenVerifier"] = (...a) => this.use.tokenVerifier(...a);
  readonly checkin: LeaseEnd["checkin"] = (...a) => this.end.checkin(...a);
  readonly revoke: LeaseEnd["revoke"] = (...a) => this.end.revoke(...a);
  readonly revokeAgent: LeaseEnd["revokeAgent"] = (...a) => this.end.revokeAgent(...a);
  readonly revokeResource: LeaseEnd["revokeResource"] = (...a) => this.end.revokeResource(...a);
  readonly completeTask: TaskTeardown["complete"] = (...a) => this.tasks.complete(...a);
  readonly revokeTask: TaskTeardown["revoke"] = (...a) => this.tasks.revoke(...a);
  readonly endLease: LeaseEnd["endLease"] = (...a) => this.end.endLease(...a);
  readonly pollApproval: ApprovalDesk["poll"] = (...a) => this.approvalDesk.poll(...a);
  readonly pollApprovalAs: ApprovalDesk["pollAs"] = (...a) => this.approvalDesk.pollAs(...a);
  readonly listApprovals: ApprovalDesk["list"] = (...a) => this.approvalDesk.list(...a);
  readonly decideApproval: ApprovalDesk["decide"] = (...a) => this.approvalDesk.decide(...a);
  readonly approvalResource: ApprovalDesk["resourceOf"] = (...a) => this.approvalDesk.resourceOf(...a);
  readonly catalog: AgentCatalog["list"] = (...a) => this.agentCatalog.list(...a);
  readonly reportToolCall: AgentToolCalls["record"] = (...a) => this.agentToolCalls.record(...a);
  readonly catalogAs: AgentCatalog["listAs"] = (...a) => this.agentCatalog.listAs(...a);
  readonly reportToolCallAs: AgentToolCalls["recordAs"] = (...a) => this.agentToolCalls.recordAs(...a);
  readonly getAny: LeaseQueries["getAny"] = (...a) => this.queries.getAny(...a);
  readonly list: LeaseQueries["list"] = (...a) => this.queries.list(...a);
}

export type { CheckoutOk, CheckoutPending } from "./checkout.js";
export type { PresentedToken } from "./lease-auth.js";
export type { RequestMeta } from "./request-meta.js";
export { approvalView } from "./approval-view.js";
