import { randomBytes } from "node:crypto";
import { decodeProtectedHeader } from "jose";
import type { Approval, ApprovalStore } from "../approvals/approval-store.js";
import type { CallerAttestation } from "../attest/types.js";
import type { AuditSink } from "../audit/index.js";
import type { LeaseEventPublisher } from "../events/index.js";
import { LeaseholdError } from "../errors.js";
import { type LeaseRecord, type LeaseSpec, type LeaseStore, scramVerifier } from "../leases/index.js";
import { AGENT_ATTRIBUTES } from "../policy/index.js";
import type { ResourceCatalog } from "../resources/catalog.js";
import type { StoredRegistration } from "../resources/types.js";
import { agentDecision } from "./agent-decision.js";
import { limitAgentRateAndCount } from "./agent-rate.js";
import { type ApprovalView, requestApproval } from "./approval-view.js";
import { attestedCaller, leaseCaller, requirePinnedCaller } from "./caller-binding.js";
import type { DecisionGate } from "./decision-gate.js";
import { auditLease, registeredResource } from "./lease-audit.js";
import { type LeaseAuth, type PresentedToken, identityToken } from "./lease-auth.js";
import type { LeaseEnd } from "./lease-end.js";
import { type LeaseView, leaseView } from "./lease-view.js";
import { markLeased } from "./mark-leased.js";
import type { ClusterPort, IdentityPort, LeaseTokenPort, VerifiedCaller } from "./ports.js";
import type { RequestMeta } from "./request-meta.js";
import type { CheckoutRequest } from "./requests.js";
import type { RotationEngine } from "../rotation/index.js";
import type { SecretStore } from "../secrets/index.js";

/** The `kid` of a token this sidecar just minted (its verifier names the key it must keep). */
const tokenKid = (token: string): string | undefined => {
  const { kid } = decodeProtectedHeader(token);
  return typeof kid === "string" ? kid : undefined;
};

/** A resource's local listener: where it listens and the protocol it speaks. */
export interface ProxyEndpointInfo {
  readonly host: string;
  readonly port: number;
  readonly protocol?: string;
}

export interface CheckoutOptions {
  readonly leases: LeaseStore;
  readonly secrets: SecretStore;
  readonly catalog: ResourceCatalog;
  readonly rotation: RotationEngine;
  readonly identity: IdentityPort;
  readonly tokens: LeaseTokenPort;
  readonly audit: AuditSink;
  readonly events: LeaseEventPublisher;
  readonly auth: LeaseAuth;
  readonly gate: DecisionGate;
  readonly end: LeaseEnd;
  /** Pending approvals; without it, an approval_required decision is a denial. */
  readonly approvals?: ApprovalStore | undefined;
  /** How long an approval request stays open, seconds. */
  readonly approvalTtlSeconds: number;
  /** Where agents connect to a resource's local listener (checkout response `proxy`). */
  readonly proxyEndpoint?: ((resource: string) => ProxyEndpointInfo | undefined) | undefined;
  /** Checkouts one agent may request per minute; 0 or absent = no limit. */
  readonly checkoutsPerMinute?: number | undefined;
  /** The cluster identity: checkouts are refused (503) unless Vault and Redis form one cluster. */
  readonly cluster?: ClusterPort | undefined;
  readonly now: () => number;
}

export interface CheckoutOk {
  readonly lease: LeaseView;
  readonly token: string;
  readonly token_type: "Bearer" | "DPoP";
  /** How to reach the resource's local listener: log in with user=<lease id>, password=<lease token>. */
  readonly proxy?: { readonly host: string; readonly port: number; readonly username: string };
}

export interface CheckoutPending {
  readonly approval: ApprovalView;
}

/** Who a lease is issued to and how its token is bound. */
interface Holder {
  readonly agent: string;
  readonly approver?: string | undefined;
  readonly jkt?: string | undefined;
  /** Delegators, nearest first. */
  readonly chain?: readonly string[] | undefined;
  /** The agent's vouched-for attributes (never raw claims); those policy can see are kept on the lease. */
  readonly attributes: Readonly<Record<string, unknown>>;
  /** The local process that checks out: the lease is bound to it (`identity.bindCaller`). */
  readonly caller: CallerAttestation;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });

/** The verified attributes policy can see (the schema's Agent attributes), kept on the lease. */
function policyAttributes(attributes: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(attributes).filter(([k]) => Object.hasOwn(AGENT_ATTRIBUTES, k)));
}

const newLeaseId = () => `lse_${randomBytes(16).toString("base64url")}`;

/**
 * Checkout: verify the agent, ask policy (recording the decision), take an account, mark it
 * leased in Vault, hand out a lease token. A decision that wants a human opens an approval; an
 * approved one is redeemed here too, deciding again with `approved: true`.
 */
export class Checkout {
  constructor(private readonly o: CheckoutOptions) {}

  async checkout(
    identity: string | PresentedToken,
    req: CheckoutRequest,
    meta: RequestMeta,
    delegation?: string,
  ): Promise<CheckoutOk | CheckoutPending> {
    const presented = identityToken(identity);
    // A delegation token from the token exchange makes the caller act for the party it names.
    // The one-time jti is spent by the rate-count script, the first thing checkoutVerified does.
    const caller = await this.o.identity.verify(
      presented.token,
      delegation === undefined ? { deferSpend: true } : { deferSpend: true, delegation },
    );
    return this.checkoutVerified(caller, presented, req, meta);
  }

  /**
   * Checkout for a caller already verified (and its one-time jti spent) by the one calling:
   * `POST /mcp`'s session, whose identity token opened it. Every later stage is the same as
   * {@link checkout}'s: rate limit, the local caller from `meta`, pinned callers, delegated
   * scope, cluster and audit health, policy, approvals. No DPoP proof is presented, so the lease
   * token is Bearer: it must stay in the process that asked.
   */
  checkoutAs(
    caller: VerifiedCaller,
    req: CheckoutRequest,
    meta: RequestMeta,
  ): Promise<CheckoutOk | CheckoutPending> {
    return this.checkoutVerified(caller, undefined, req, meta);
  }

  private async checkoutVerified(
    caller: VerifiedCaller,
    presented: PresentedToken | undefined,
    req: CheckoutRequest,
    meta: RequestMeta,
  ): Promise<CheckoutOk | CheckoutPending> {
    // Policy needs the agent's lease count: read with the rate count, in one round trip that
    // first spends the identity token's one-time jti (a replay is refused before it is counted).
    const activeLeases = await limitAgentRateAndCount(
      this.o.leases,
      "checkout",
      caller.subject,
      this.o.checkoutsPerMinute,
      caller.spend,
    );
    // Attested only for a request within the agent's rate: refused ones cost no /proc work.
    const local = attestedCaller(meta);
    const reg = await registeredResource(this.o.catalog, req.resource);
    const ttl = Math.min(req.ttl ?? reg.lease.defaultTtl, reg.lease.maxTtl);
    const chain = caller.delegation?.chain;
    const attempt = {
      agent: caller.subject,
      agent_chain: chain,
      task_id: req.task.id,
      intent: req.intent.action,
      tool: req.intent.tool,
      resource: reg.name,
      request_id: meta.requestId,
    };
    await requirePinnedCaller(caller, local, this.o.audit, attempt);
    const jkt = presented === undefined ? undefined : await this.o.auth.proofAtIssue(presented, attempt);
    await this.withinDelegatedScope(caller, reg, attempt);
    const localCaller = await local;
    this.o.cluster?.assertServing();
    if (!this.o.audit.healthy()) {
      throw new LeaseholdError(
        "upstream_unavailable",
        "the audit log cannot be written; checkouts are refused",
      );
    }
    const { decision, recorded } = await this.o.gate.evaluate(
      agentDecision({
        action: "checkout",
        agent: caller.subject,
        attrs: caller.attributes,
        reg,
        taskId: req.task.id,
        intent: req.intent.action,
        tool: req.intent.tool,
        ttl,
        now: this.o.now(),
        activeLeases,
        dpop: jkt !== undefined,
        chain,
        onBehalfOf: caller.delegation?.onBehalfOf,
        caller: localCaller,
        requestId: meta.requestId,
        allowApproval: this.o.approvals !== undefined,
        withAction: true,
      }),
    );
    if (decision.decision === "approval_required" && this.o.approvals) {
      await recorded;
      const approval = await requestApproval(this.o.approvals, this.o.audit, {
        caller,
        req,
        ttl,
        ttlSeconds: this.o.approvalTtlSeconds,
        policies: decision.policies,
        // The approval stays bound to the key this checkout proved: every poll must prove it too.
        jkt,
        requestId: meta.requestId,
      });
      return { approval };
    }
    const holder = { agent: caller.subject, jkt, chain, attributes: caller.attributes, caller: localCaller };
    return this.o.gate.proceed(recorded, () => this.issue(holder, reg, req, ttl, meta));
  }

  /**
   * Turns an approved request into a lease: policy decides again with `approved: true` (the
   * approver named on the decision), then the lease is issued to the polling agent.
   */
  async redeem(
    a: Approval,
    caller: VerifiedCaller,
    jkt: string | undefined,
    meta: RequestMeta,
  ): Promise<CheckoutOk> {
    const reg = await registeredResource(this.o.catalog, a.resource);
    const chain = caller.delegation?.chain;
    // The lease goes to the process that redeems the approval (the one polling), and is bound to it.
    const localCaller = await attestedCaller(meta);
    await this.o.gate.require(
      agentDecision({
        action: "checkout",
        agent: caller.subject,
        attrs: caller.attributes,
        reg,
        taskId: a.task.id,
        intent: a.intent.action,
        tool: a.intent.tool,
        ttl: a.ttl,
        now: this.o.now(),
        activeLeases: await this.o.leases.activeCount(caller.subject),
        approved: true,
        dpop: jkt !== undefined,
        chain,
        onBehalfOf: caller.delegation?.onBehalfOf,
        approver: a.approver,
        caller: localCaller,
        requestId: meta.requestId,
      }),
    );
    const holder = {
      agent: caller.subject,
      approver: a.approver,
      jkt,
      chain,
      attributes: caller.attributes,
      caller: localCaller,
    };
    return this.issue(holder, reg, { task: a.task, intent: a.intent }, a.ttl, meta);
  }

  /** The lease's token, bound to `jkt` when given; minted once per lease (a redeemed approval gets no second one). */
  private mint(lease: LeaseRecord, jkt: string | undefined): Promise<string> {
    const input: Parameters<CheckoutOptions["tokens"]["mint"]>[0] = {
      leaseId: lease.id,
      agent: lease.agent,
      resource: lease.resource,
      account: lease.account,
      expiresAt: lease.max_expires_at,
    };
    if (jkt !== undefined) input.jkt = jkt;
    return this.o.tokens.mint(input);
  }

  /** A delegated agent may check out only the resources its delegation's scope names. */
  private async withinDelegatedScope(
    caller: VerifiedCaller,
    reg: StoredRegistration,
    attempt: { agent: string; request_id: string },
  ): Promise<void> {
    const scope = caller.delegation?.scope;
    if (scope === undefined || scope.includes(reg.name)) return;
    const reason = `"${reg.name}" is outside the scope delegated to this agent`;
    await this.o.audit.append({ ...attempt, event: "decision", scope: "checkout", decision: "deny", reason });
    throw new LeaseholdError("policy_denied", reason);
  }

  /** Takes an account and issues the lease (after policy allowed it). */
  private async issue(
    holder: Holder,
    reg: StoredRegistration,
    req: { task: LeaseRecord["task"]; intent: LeaseRecord["intent"]; wait?: number | undefined },
    ttl: number,
    meta: RequestMeta,
  ): Promise<CheckoutOk> {
    const attrs = policyAttributes(holder.attributes);
    // Fields assigned in the order the stored spec JSON has always had, not spread in.
    const spec: { -readonly [K in keyof LeaseSpec]: LeaseSpec[K] } = {
      id: newLeaseId(),
      resource: reg.name,
      agent: holder.agent,
      task: req.task,
      intent: req.intent,
    };
    if (holder.approver) spec.approver = holder.approver;
    if (holder.chain?.length) spec.agent_chain = [...holder.chain];
    if (Object.keys(attrs).length) spec.attrs = attrs;
    spec.caller = leaseCaller(holder.caller);
    const { lease, announced } = await this.takeAccount(spec, reg, ttl, req.wait ?? 0, meta.signal);
    // Signed while Vault is asked; the token is handed out only after the account is marked leased.
    const minted = this.mint(lease, holder.jkt);
    // DPoP-bound tokens cannot log in to a listener (no proof travels in a password), so no endpoint for them.
    const ep = holder.jkt === undefined ? this.o.proxyEndpoint?.(lease.resource) : undefined;
    // A PostgreSQL listener asks for SCRAM against the token's verifier, stored before the token goes out.
    const sealed =
      ep?.protocol === "postgres"
        ? minted.then(async (t) =>
            this.o.leases.setTokenVerifier(lease.resource, lease.id, await scramVerifier(t, tokenKid(t))),
          )
        : minted;
    sealed.catch(() => undefined);
    try {
      await markLeased(this.o, lease);
    } catch (err) {
      // The lease script announced the lease on the stream; its readers learn it ended at once.
      if (announced)
        await this.o.events
          .publish({ type: "ended", lease: { ...lease, state: "ended" }, reason: "revoked" })
          .catch(() => undefined);
      throw err;
    }
    let token: string;
    try {
      token = await minted;
      await sealed;
    } catch (err) {
      await this.o.end.endLease(
        lease.resource,
        lease.id,
        "revoked",
        meta.requestId,
        "token could not be minted",
      );
      throw err;
    }
    await Promise.all([
      auditLease(this.o.audit, lease, { event: "checkout", request_id: meta.requestId, scope: "checkout" }),
      this.o.events.publish({ type: "issued", lease }, { inStream: announced }),
    ]);
    const view = leaseView(lease);
    const tokenType = holder.jkt === undefined ? "Bearer" : "DPoP";
    if (!ep) return { lease: view, token, token_type: tokenType };
    return {
      lease: view,
      token,
      token_type: tokenType,
      proxy: { host: ep.host, port: ep.port, username: lease.id },
    };
  }

  /**
   * Takes a free account (I1). A waiting request queues first come, first served; it leaves the
   * queue when it gives up or its client disconnects. @throws 409 resource_busy
   */
  private async takeAccount(
    spec: Parameters<LeaseStore["checkout"]>[0],
    reg: StoredRegistration,
    ttl: number,
    wait: number,
    signal: AbortSignal | undefined,
  ): Promise<{ lease: LeaseRecord; announced: boolean }> {
    const deadline = this.o.now() + wait * 1000;
    const waiter = wait > 0 ? spec.id : "";
    const take = () => this.o.leases.checkout(spec, ttl * 1000, reg.lease.maxTtl * 1000, waiter);
    let got = await take();
    while (!got.ok && this.o.now() < deadline && !signal?.aborted) {
      await sleep(Math.min(100, Math.max(1, deadline - this.o.now())), signal);
      if (signal?.aborted) break;
      got = await take();
    }
    if (got.ok) return got;
    if (waiter) await this.o.leases.leaveQueue(reg.name, waiter);
    throw new LeaseholdError("resource_busy", `every account of "${reg.name}" is in use`, { retryAfter: 1 });
  }
}
