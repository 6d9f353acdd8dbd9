import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { z } from "zod";
import type { Approval, ApprovalStore } from "../approvals/approval-store.js";
import type { AuditFields, AuditSink } from "../audit/index.js";
import { LeaseholdError } from "../errors.js";
import { AGENT_ATTRIBUTES } from "../policy/index.js";
import type { EndReason, LeaseRecord, LeaseStore } from "../leases/index.js";
import type { Logger } from "../logger.js";
import type { ResourceCatalog } from "../resources/catalog.js";
import type { AccountRecord, StoredRegistration } from "../resources/types.js";
import { vaultPaths } from "../resources/vault-paths.js";
import type { RotationEngine } from "../rotation/index.js";
import type { SecretStore } from "../secrets/index.js";
import { type LeaseView, leaseView } from "./lease-view.js";
import type {
  IdentityPort,
  LeaseTokenClaims,
  LeaseTokenPort,
  PolicyActionName,
  PolicyContextInput,
  PolicyDecisionOut,
  PolicyPort,
} from "./ports.js";
import { parseBody } from "./validate.js";

/**
 * A token as a request presents it: the Authorization scheme, the token, the `DPoP` proof
 * header if any, and the method and URL (`dpopRequestUrl`) the proof must name. A bare
 * string is a Bearer token with no proof (the protocol proxies present tokens that way).
 */
export interface PresentedToken {
  readonly scheme: "Bearer" | "DPoP";
  readonly token: string;
  readonly proof?: string | undefined;
  readonly htm: string;
  readonly htu: string | undefined;
}

/** Verifies DPoP proofs (RFC 9449); the identity module's `createDpopVerifier` fits. */
export interface DpopPort {
  verify(check: {
    proof: string;
    htm: string;
    htu: string;
    accessToken?: string;
    jkt?: string;
  }): Promise<{ jkt: string }>;
}

/** The identity port, with the delegation chain a verifier may attach (`withDelegation`). */
export interface DelegatingIdentityPort extends IdentityPort {
  verify(jwt: string): Promise<{
    subject: string;
    claims: Record<string, unknown>;
    delegation?: { chain: readonly string[]; scope?: readonly string[] | undefined } | undefined;
  }>;
}

/** The lease-token port, with DPoP binding (`cnf.jkt`). */
export interface BindingLeaseTokenPort extends LeaseTokenPort {
  mint(input: Parameters<LeaseTokenPort["mint"]>[0] & { jkt?: string | undefined }): Promise<string>;
  verify(token: string): Promise<LeaseTokenClaims & { readonly jkt?: string | undefined }>;
}

/** The policy port; its context may name the nearest delegator. */
export interface DelegationAwarePolicyPort extends PolicyPort {
  decide(
    req: Omit<Parameters<PolicyPort["decide"]>[0], "context"> & {
      context: PolicyContextInput & { delegated_by?: string };
    },
  ): PolicyDecisionOut;
}

const asPresented = (t: string | PresentedToken): PresentedToken =>
  typeof t === "string" ? { scheme: "Bearer", token: t, htm: "", htu: undefined } : t;

/** Identity tokens are bearer tokens; a proof of possession goes in the DPoP header. */
function identityToken(t: string | PresentedToken): PresentedToken {
  const presented = asPresented(t);
  if (presented.scheme !== "Bearer") {
    throw new LeaseholdError(
      "unauthenticated",
      "identity tokens are sent as 'Authorization: Bearer <token>' (a DPoP proof goes in the DPoP header)",
    );
  }
  return presented;
}

export const checkoutSchema = z.strictObject({
  resource: z.string().min(1).max(63),
  task: z.strictObject({ id: z.string().min(1).max(200), description: z.string().max(2000).optional() }),
  intent: z.strictObject({ action: z.string().min(1).max(64), tool: z.string().min(1).max(128).optional() }),
  ttl: z
    .number()
    .int()
    .min(1)
    .max(7 * 86400)
    .optional(),
  wait: z.number().min(0).max(300).optional(),
});

export const renewSchema = z.strictObject({
  ttl: z
    .number()
    .int()
    .min(1)
    .max(7 * 86400)
    .optional(),
});

export const toolCallSchema = z.strictObject({
  tool: z.string().min(1).max(128),
  action: z.string().min(1).max(64),
  target: z.string().max(1000).optional(),
  digest: z
    .string()
    .regex(/^(sha256:)?[0-9a-f]{64}$/, "must be a hex SHA-256 digest")
    .optional(),
});

export const revokeSchema = z.strictObject({ reason: z.string().max(500).optional() });

export interface LeaseServiceOptions {
  leases: LeaseStore;
  secrets: SecretStore;
  catalog: ResourceCatalog;
  rotation: RotationEngine;
  identity: DelegatingIdentityPort;
  tokens: BindingLeaseTokenPort;
  policy: DelegationAwarePolicyPort;
  /** DPoP proof verification; without it, a proof or a bound token is refused. */
  dpop?: DpopPort;
  audit: AuditSink;
  log: Logger;
  /** Pending approvals; without it, an approval_required decision is a denial. */
  approvals?: ApprovalStore;
  /** How long an approval request stays open, seconds. @default 900 */
  approvalTtlSeconds?: number;
  /** Where agents connect to a resource's local listener (checkout response `proxy`). */
  proxyEndpoint?: (resource: string) => { host: string; port: number } | undefined;
  /** Checkouts one agent may request per minute; 0 or absent = no limit. */
  checkoutsPerMinute?: number;
  /** Clock for policy context (hour_utc). */
  now?: () => number;
}

export interface RequestMeta {
  readonly requestId: string;
  readonly signal?: AbortSignal | undefined;
}

export interface CheckoutPending {
  readonly approval: ReturnType<typeof approvalView>;
}

/** An approval as agents and operators see it (a redeeming one shows as approved). */
export function approvalView(a: Approval) {
  return { ...a, status: (a.status as string) === "redeeming" ? "approved" : a.status };
}

export interface CheckoutOk {
  readonly lease: LeaseView;
  readonly token: string;
  readonly token_type: "Bearer" | "DPoP";
  /** How to reach the resource's local listener: log in with user=<lease id>, password=<lease token>. */
  readonly proxy?: { readonly host: string; readonly port: number; readonly username: string };
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });

/** The identity claims policy can see (the schema's Agent attributes), kept on the lease. */
function policyAttributes(claims: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(claims).filter(([k]) => k in AGENT_ATTRIBUTES));
}

function newLeaseId(): string {
  return `lse_${randomBytes(16).toString("base64url")}`;
}

/** Checkout, token use, renew, check-in and revocation: the lease lifecycle seen from HTTP. */
export class LeaseService {
  private readonly now: () => number;
  /** Local lease events: "ended" (lease: LeaseRecord) fires when this sidecar ends a lease. */
  readonly events = new EventEmitter();

  constructor(private readonly o: LeaseServiceOptions) {
    this.now = o.now ?? Date.now;
  }

  private async resource(name: string): Promise<StoredRegistration> {
    const reg = await this.o.catalog.get(name);
    if (!reg) throw new LeaseholdError("not_found", `resource "${name}" is not registered`);
    return reg;
  }

  private auditLease(lease: LeaseRecord, fields: AuditFields): Promise<void> {
    return this.o.audit.append({
      agent: lease.agent,
      agent_chain: lease.agent_chain,
      approver: lease.approver,
      task_id: lease.task.id,
      intent: lease.intent.action,
      tool: lease.intent.tool,
      resource: lease.resource,
      account: lease.account,
      lease_id: lease.id,
      ...fields,
    });
  }

  /**
   * Asks policy and appends the decision to the audit log. A refusal waits for its record and
   * throws. An allow (or, with `allowApproval`, an approval_required) returns at once with
   * `recorded`, which settles when the record is on disk: the caller works meanwhile and must
   * await it before anything the decision allowed leaves the sidecar.
   */
  private async evaluate(
    action: PolicyActionName,
    agent: string,
    claims: Record<string, unknown>,
    reg: StoredRegistration,
    input: { taskId: string; intent: string; tool?: string | undefined; ttl: number },
    requestId: string,
    lease?: LeaseRecord,
    opts: {
      approved?: boolean;
      allowApproval?: boolean;
      /** The request's token is DPoP-bound (or the checkout carried a valid proof). */
      dpop?: boolean;
      /** Delegators, nearest first. */
      chain?: readonly string[] | undefined;
      /** The human who approved this request (recorded on the decision). */
      approver?: string | undefined;
      /** The agent's active lease count, when the caller already asked for it. */
      activeLeases?: Promise<number> | undefined;
      /** An allow is written with the action's own record (see {@link afterDecision}). */
      withAction?: boolean;
    } = {},
  ): Promise<{ decision: PolicyDecisionOut; recorded: Promise<void> }> {
    const chain = opts.chain ?? lease?.agent_chain;
    const decision = this.o.policy.decide({
      principal: agent,
      action,
      resource: reg.name,
      context: {
        task_id: input.taskId,
        intent: input.intent,
        tool: input.tool ?? "",
        ttl: input.ttl,
        hour_utc: new Date(this.now()).getUTCHours(),
        active_leases: await (opts.activeLeases ?? this.o.leases.activeCount(agent)),
        approved: opts.approved ?? false,
        dpop: opts.dpop ?? false,
        ...(chain?.[0] === undefined ? {} : { delegated_by: chain[0] }),
      },
      principalAttrs: claims,
      resourceGroups: [...reg.groups],
    });
    const recorded = this.o.audit.append(
      {
        event: "decision",
        agent,
        agent_chain: chain,
        approver: lease?.approver ?? opts.approver,
        task_id: input.taskId,
        intent: input.intent,
        tool: input.tool,
        scope: action,
        resource: reg.name,
        account: lease?.account,
        lease_id: lease?.id,
        decision: decision.decision,
        policies: decision.policies,
        reason:
          decision.decision === "allow"
            ? undefined
            : (decision.reasons[0] ?? "no policy permits this request"),
        request_id: requestId,
      },
      { withNext: opts.withAction === true && decision.decision === "allow" },
    );
    if (decision.decision === "allow" || (decision.decision === "approval_required" && opts.allowApproval)) {
      // Awaited by the caller later; a failure must not count as unhandled meanwhile.
      recorded.catch(() => undefined);
      return { decision, recorded };
    }
    await recorded;
    if (decision.decision === "approval_required") {
      throw new LeaseholdError("policy_denied", `${action} of "${reg.name}" needs a human approval`);
    }
    throw new LeaseholdError(
      "policy_denied",
      `policy does not allow ${action} of "${reg.name}" for this agent`,
    );
  }

  /**
   * Runs what an allowing decision permits while the decision's record is still being written
   * (appended `withAction`, it goes to disk with the action's own record: one flush for both);
   * answers, or fails, only once the decision is on disk.
   */
  private async afterDecision<T>(recorded: Promise<void>, act: () => Promise<T>): Promise<T> {
    try {
      return await act();
    } catch (err) {
      // No action record follows to carry the decision: write it now.
      this.o.audit.flush?.();
      throw err;
    } finally {
      await recorded;
    }
  }

  /** {@link evaluate}, waiting for the decision's record. */
  private async decide(...args: Parameters<LeaseService["evaluate"]>): Promise<PolicyDecisionOut> {
    const { decision, recorded } = await this.evaluate(...args);
    await recorded;
    return decision;
  }

  /** Verifies the agent, asks policy, takes an account, marks it leased in Vault, mints the token. */
  async checkout(
    identity: string | PresentedToken,
    body: unknown,
    meta: RequestMeta,
  ): Promise<CheckoutOk | CheckoutPending> {
    const presented = identityToken(identity);
    const ident = await this.o.identity.verify(presented.token);
    // Policy needs the agent's lease count: read it while the request is checked.
    const activeLeases = this.o.leases.activeCount(ident.subject);
    activeLeases.catch(() => undefined);
    if (this.o.checkoutsPerMinute) {
      const { count, resetIn } = await this.o.leases.hit(`checkout:${ident.subject}`, 60);
      if (count > this.o.checkoutsPerMinute) {
        throw new LeaseholdError(
          "rate_limited",
          `more than ${this.o.checkoutsPerMinute} checkouts a minute`,
          {
            retryAfter: resetIn,
          },
        );
      }
    }
    const req = parseBody(checkoutSchema, body);
    const reg = await this.resource(req.resource);
    const ttl = Math.min(req.ttl ?? reg.lease.defaultTtl, reg.lease.maxTtl);
    const chain = ident.delegation?.chain;
    const attempt = {
      agent: ident.subject,
      agent_chain: chain,
      task_id: req.task.id,
      intent: req.intent.action,
      tool: req.intent.tool,
      resource: reg.name,
      request_id: meta.requestId,
    };
    const jkt = await this.proofAtIssue(presented, attempt);
    const scope = ident.delegation?.scope;
    if (scope !== undefined && !scope.includes(reg.name)) {
      const reason = `"${reg.name}" is outside the scope delegated to this agent`;
      await this.o.audit.append({
        ...attempt,
        event: "decision",
        scope: "checkout",
        decision: "deny",
        reason,
      });
      throw new LeaseholdError("policy_denied", reason);
    }
    if (!this.o.audit.healthy()) {
      throw new LeaseholdError(
        "upstream_unavailable",
        "the audit log cannot be written; checkouts are refused",
      );
    }
    const { decision, recorded } = await this.evaluate(
      "checkout",
      ident.subject,
      ident.claims,
      reg,
      { taskId: req.task.id, intent: req.intent.action, tool: req.intent.tool, ttl },
      meta.requestId,
      undefined,
      {
        allowApproval: this.o.approvals !== undefined,
        dpop: jkt !== undefined,
        chain,
        activeLeases,
        withAction: true,
      },
    );
    if (decision.decision === "approval_required" && this.o.approvals) {
      await recorded;
      const approval = await this.o.approvals.create(
        {
          agent: ident.subject,
          resource: reg.name,
          task: req.task,
          intent: req.intent,
          ttl,
          policies: [...decision.policies],
        },
        this.o.approvalTtlSeconds ?? 900,
      );
      await this.o.audit.append({
        event: "decision",
        agent: ident.subject,
        agent_chain: chain,
        task_id: req.task.id,
        intent: req.intent.action,
        tool: req.intent.tool,
        scope: "approval_requested",
        resource: reg.name,
        decision: "approval_required",
        policies: decision.policies,
        reason: approval.id,
        request_id: meta.requestId,
      });
      return { approval: approvalView(approval) };
    }
    return this.afterDecision(recorded, () =>
      this.issue(ident.subject, reg, req, ttl, meta, undefined, {
        jkt,
        chain,
        attrs: policyAttributes(ident.claims),
      }),
    );
  }

  /**
   * Verifies the DPoP proof of a checkout or approval poll (RFC 9449 §5: no `ath` needed);
   * returns its key's thumbprint, or `undefined` when the request has no proof. Refusals are audited.
   */
  private async proofAtIssue(presented: PresentedToken, fields: Omit<AuditFields, "event">) {
    if (presented.proof === undefined) return undefined;
    try {
      const { dpop } = this.o;
      if (dpop === undefined)
        throw new LeaseholdError("unauthenticated", "DPoP is not enabled on this sidecar");
      if (presented.htu === undefined) {
        throw new LeaseholdError(
          "unauthenticated",
          "DPoP proof cannot be checked: the request URL is unusable",
        );
      }
      return (await dpop.verify({ proof: presented.proof, htm: presented.htm, htu: presented.htu })).jkt;
    } catch (err) {
      if (err instanceof LeaseholdError && err.code === "unauthenticated") {
        await this.o.audit.append({
          ...fields,
          event: "decision",
          scope: "dpop",
          decision: "deny",
          reason: err.message,
        });
      }
      throw err;
    }
  }

  /** Takes an account and issues the lease (after policy allowed it). */
  private async issue(
    agent: string,
    reg: StoredRegistration,
    req: { task: LeaseRecord["task"]; intent: LeaseRecord["intent"]; wait?: number | undefined },
    ttl: number,
    meta: RequestMeta,
    approver?: string,
    binding: {
      jkt?: string | undefined;
      chain?: readonly string[] | undefined;
      /** The agent's policy attributes (from its identity token), kept for decisions on the lease. */
      attrs?: Record<string, unknown> | undefined;
    } = {},
  ): Promise<CheckoutOk> {
    const spec = {
      id: newLeaseId(),
      resource: reg.name,
      agent,
      task: req.task,
      intent: req.intent,
      ...(approver ? { approver } : {}),
      ...(binding.chain?.length ? { agent_chain: [...binding.chain] } : {}),
      ...(binding.attrs && Object.keys(binding.attrs).length ? { attrs: binding.attrs } : {}),
    };
    const deadline = this.now() + (req.wait ?? 0) * 1000;
    // A waiting request queues first come, first served; it leaves the queue when it gives up
    // or its client disconnects.
    const waiter = (req.wait ?? 0) > 0 ? spec.id : "";
    let got = await this.o.leases.checkout(spec, ttl * 1000, reg.lease.maxTtl * 1000, waiter);
    while (!got.ok && this.now() < deadline && !meta.signal?.aborted) {
      await sleep(Math.min(100, Math.max(1, deadline - this.now())), meta.signal);
      if (meta.signal?.aborted) break;
      got = await this.o.leases.checkout(spec, ttl * 1000, reg.lease.maxTtl * 1000, waiter);
    }
    if (!got.ok && waiter) await this.o.leases.leaveQueue(reg.name, waiter);
    if (!got.ok) {
      throw new LeaseholdError("resource_busy", `every account of "${reg.name}" is in use`, {
        retryAfter: 1,
      });
    }
    const lease = got.lease;
    // Signed while Vault is asked; the token is handed out only after the account is marked leased.
    const minted = this.o.tokens.mint({
      leaseId: lease.id,
      agent: lease.agent,
      resource: lease.resource,
      account: lease.account,
      expiresAt: lease.max_expires_at,
      ...(binding.jkt === undefined ? {} : { jkt: binding.jkt }),
    });
    minted.catch(() => undefined);
    await this.markLeased(lease);
    let token: string;
    try {
      token = await minted;
    } catch (err) {
      await this.endLease(lease.resource, lease.id, "revoked", meta.requestId, "token could not be minted");
      throw err;
    }
    await Promise.all([
      this.auditLease(lease, { event: "checkout", request_id: meta.requestId, scope: "checkout" }),
      this.o.leases.emit({
        type: "issued",
        resource: lease.resource,
        account: lease.account,
        lease_id: lease.id,
        agent: lease.agent,
      }),
    ]);
    // DPoP-bound tokens cannot log in to a listener (no proof travels in a password), so no endpoint for them.
    const ep = binding.jkt === undefined ? this.o.proxyEndpoint?.(lease.resource) : undefined;
    return {
      lease: leaseView(lease),
      token,
      token_type: binding.jkt === undefined ? "Bearer" : "DPoP",
      ...(ep ? { proxy: { host: ep.host, port: ep.port, username: lease.id } } : {}),
    };
  }

  private approvalsOrThrow(): ApprovalStore {
    if (!this.o.approvals) throw new LeaseholdError("not_found", "approvals are not enabled");
    return this.o.approvals;
  }

  /**
   * The agent's view of its approval request (identity JWT of the same agent). Once approved,
   * the first poll turns it into a lease (policy decides again with approved: true) and returns
   * the lease and its token; later polls return the same lease with a fresh token.
   */
  async pollApproval(identity: string | PresentedToken, id: string, meta: RequestMeta) {
    const store = this.approvalsOrThrow();
    const presented = identityToken(identity);
    const ident = await this.o.identity.verify(presented.token);
    const a = await store.get(id);
    if (!a || a.agent !== ident.subject)
      throw new LeaseholdError("not_found", "no such approval for this agent");
    // The token of an approved checkout is bound to the key that proves itself on this poll.
    const chain = ident.delegation?.chain;
    const jkt = await this.proofAtIssue(presented, {
      agent: ident.subject,
      agent_chain: chain,
      task_id: a.task.id,
      intent: a.intent.action,
      tool: a.intent.tool,
      resource: a.resource,
      request_id: meta.requestId,
    });
    if (a.status !== "approved" && (a.status as string) !== "redeeming") return { approval: approvalView(a) };
    if (a.lease_id) {
      const lease = await this.o.leases.get(a.resource, a.lease_id);
      if (!lease) return { approval: approvalView(a) };
      const token =
        lease.state === "active"
          ? await this.o.tokens.mint({
              leaseId: lease.id,
              agent: lease.agent,
              resource: lease.resource,
              account: lease.account,
              expiresAt: lease.max_expires_at,
              ...(jkt === undefined ? {} : { jkt }),
            })
          : undefined;
      return {
        approval: {
          ...approvalView(a),
          lease: leaseView(lease),
          ...(token
            ? { token, token_type: jkt === undefined ? ("Bearer" as const) : ("DPoP" as const) }
            : {}),
        },
      };
    }
    if (!(await store.claimRedeem(a))) return { approval: approvalView({ ...a, status: "approved" }) };
    try {
      const reg = await this.resource(a.resource);
      await this.decide(
        "checkout",
        ident.subject,
        ident.claims,
        reg,
        { taskId: a.task.id, intent: a.intent.action, tool: a.intent.tool, ttl: a.ttl },
        meta.requestId,
        undefined,
        { approved: true, dpop: jkt !== undefined, chain, approver: a.approver },
      );
      const out = await this.issue(
        ident.subject,
        reg,
        { task: a.task, intent: a.intent },
        a.ttl,
        meta,
        a.approver,
        { jkt, chain, attrs: policyAttributes(ident.claims) },
      );
      await store.releaseRedeem(a, out.lease.id);
      return {
        approval: {
          ...approvalView({ ...a, lease_id: out.lease.id }),
          lease: out.lease,
          token: out.token,
          token_type: out.token_type,
        },
      };
    } catch (err) {
      await store.releaseRedeem(a);
      throw err;
    }
  }

  async listApprovals(status?: string) {
    const all = await this.approvalsOrThrow().list();
    return { approvals: all.map(approvalView).filter((a) => !status || a.status === status) };
  }

  /** An operator approves or denies a pending request; the approver is recorded on the lease and in the audit. */
  async decideApproval(
    id: string,
    approve: boolean,
    approver: string,
    reason: string | undefined,
    meta: RequestMeta,
  ) {
    const store = this.approvalsOrThrow();
    const a = await store.get(id);
    if (!a) throw new LeaseholdError("not_found", "no such approval");
    if (a.status !== "pending")
      throw new LeaseholdError("conflict", `the approval is already ${approvalView(a).status}`);
    const next: Approval = {
      ...a,
      status: approve ? "approved" : "denied",
      approver,
      reason,
      decided_at: new Date().toISOString(),
    };
    if (!(await store.transition(a, "pending", next)))
      throw new LeaseholdError("conflict", "the approval changed meanwhile");
    await this.o.audit.append({
      event: "decision",
      agent: a.agent,
      approver,
      task_id: a.task.id,
      intent: a.intent.action,
      tool: a.intent.tool,
      scope: approve ? "approved" : "denied",
      resource: a.resource,
      decision: approve ? "allow" : "deny",
      policies: a.policies,
      reason: reason ?? id,
      request_id: meta.requestId,
    });
    return { approval: approvalView(next) };
  }

  /**
   * Marks the account leased in Vault before anything about its password leaves the sidecar
   * (I2). If Vault says the account is not clean, the lease is ended and the account rotated.
   */
  private async markLeased(lease: LeaseRecord): Promise<void> {
    const path = vaultPaths.account(lease.resource, lease.account);
    const giveBack = async (clean: boolean) => {
      await this.o.leases.end(lease.resource, lease.id, "revoked");
      if (clean) await this.o.leases.setAccountState(lease.resource, lease.account, "available");
      else
        this.o.rotation.schedule({
          resource: lease.resource,
          account: lease.account,
          reason: "dirty at checkout",
        });
    };
    let entry: Awaited<ReturnType<SecretStore["read"]>> | null;
    try {
      entry = await this.o.secrets.read<AccountRecord>(path);
    } catch (err) {
      await giveBack(true);
      throw err;
    }
    const rec = entry?.data as AccountRecord | undefined;
    if (!entry || !rec || rec.state !== "available") {
      await giveBack(false);
      throw new LeaseholdError(
        "resource_busy",
        `the account picked for "${lease.resource}" is being rotated`,
        {
          retryAfter: 1,
          detail: `vault state ${rec?.state ?? "missing"}`,
        },
      );
    }
    try {
      await this.o.secrets.write(path, { ...rec, state: "leased", lease_id: lease.id }, entry.version);
    } catch (err) {
      // The write may have landed even if the answer was lost: treat the account as dirty.
      await giveBack(false);
      throw err instanceof LeaseholdError && err.code === "conflict"
        ? new LeaseholdError("resource_busy", `the account picked for "${lease.resource}" changed`, {
            retryAfter: 1,
          })
        : err;
    }
  }

  /** Checks a lease token and the lease in Redis (one round trip): refuses ended and expired leases. */
  async authenticate(
    token: string | PresentedToken,
    leaseId: string,
    requestId?: string,
  ): Promise<{ lease: LeaseRecord; claims: LeaseTokenClaims; dpop: boolean }> {
    const presented = asPresented(token);
    const claims = await this.o.tokens.verify(presented.token);
    if (claims.leaseId !== leaseId)
      throw new LeaseholdError("unauthenticated", "the lease token is for another lease");
    const { lease, now } = await this.o.leases.use(claims.resource, claims.leaseId);
    if (!lease) throw new LeaseholdError("unauthenticated", "the lease does not exist");
    // Before the lease's state is told: a token without its key learns nothing.
    if (claims.jkt !== undefined || presented.scheme === "DPoP") {
      await this.checkBinding(presented, claims.jkt, lease, requestId);
    }
    if (lease.state === "ended") {
      if (lease.end_reason === "revoked") throw new LeaseholdError("lease_revoked", "the lease was revoked");
      if (lease.end_reason === "expired") throw new LeaseholdError("lease_expired", "the lease has expired");
      throw new LeaseholdError("unauthenticated", "the lease has ended (checked in)");
    }
    if (lease.expires_at <= now) throw new LeaseholdError("lease_expired", "the lease has expired");
    return { lease, claims, dpop: claims.jkt !== undefined };
  }

  /** RFC 9449 §7: a bound token needs the DPoP scheme and a fresh proof by its key. Refusals are audited. */
  private async checkBinding(
    presented: PresentedToken,
    jkt: string | undefined,
    lease: LeaseRecord,
    requestId: string | undefined,
  ): Promise<void> {
    const refuse = (message: string) => new LeaseholdError("unauthenticated", message);
    try {
      if (jkt === undefined) {
        throw refuse("the lease token is not DPoP-bound; send it as 'Authorization: Bearer <token>'");
      }
      if (presented.scheme !== "DPoP") {
        throw refuse(
          "the lease token is DPoP-bound: send it as 'Authorization: DPoP <token>' with a DPoP proof",
        );
      }
      if (presented.proof === undefined) {
        throw refuse(
          "DPoP proof missing: a DPoP-bound lease token needs a fresh DPoP header on every request",
        );
      }
      if (this.o.dpop === undefined) throw refuse("DPoP is not enabled on this sidecar");
      if (presented.htu === undefined)
        throw refuse("DPoP proof cannot be checked: the request URL is unusable");
      await this.o.dpop.verify({
        proof: presented.proof,
        htm: presented.htm,
        htu: presented.htu,
        accessToken: presented.token,
        jkt,
      });
    } catch (err) {
      if (err instanceof LeaseholdError && err.code === "unauthenticated") {
        await this.auditLease(lease, {
          event: "decision",
          scope: "dpop",
          decision: "deny",
          reason: err.message,
          request_id: requestId,
        });
      }
      throw err;
    }
  }

  /**
   * For local protocol listeners: checks the lease token exactly as the HTTP API does, that the
   * lease is for `resource`, and returns the real credential of the leased account. Audited.
   */
  async proxyCredential(
    token: string,
    leaseId: string,
    resource: string,
    meta: RequestMeta & { client?: string },
  ): Promise<{ lease: LeaseRecord; username: string; password: string }> {
    const { lease } = await this.authenticate(token, leaseId, meta.requestId);
    if (lease.resource !== resource)
      throw new LeaseholdError("unauthenticated", "the lease is for another resource");
    const entry = await this.o.secrets.read<AccountRecord>(vaultPaths.account(lease.resource, lease.account));
    if (entry?.data.state !== "leased" || entry.data.lease_id !== lease.id) {
      throw new LeaseholdError("conflict", "the account is no longer held by this lease");
    }
    await this.auditLease(lease, {
      event: "tool_call",
      scope: "proxy_connect",
      target: meta.client,
      request_id: meta.requestId,
    });
    return { lease, username: entry.data.username, password: entry.data.password };
  }

  async getOwn(token: string | PresentedToken, leaseId: string, meta?: RequestMeta): Promise<LeaseView> {
    return leaseView((await this.authenticate(token, leaseId, meta?.requestId)).lease);
  }

  /** The password of the leased account, after policy allows the reveal. */
  async credential(token: string | PresentedToken, leaseId: string, meta: RequestMeta) {
    const { lease, dpop } = await this.authenticate(token, leaseId, meta.requestId);
    const reg = await this.resource(lease.resource);
    if (!reg.reveal) {
      await this.auditLease(lease, {
        event: "decision",
        scope: "reveal",
        decision: "deny",
        reason: "reveal: false",
        request_id: meta.requestId,
      });
      throw new LeaseholdError(
        "policy_denied",
        `"${reg.name}" does not reveal passwords; connect through its proxy`,
      );
    }
    const { recorded } = await this.evaluate(
      "reveal",
      lease.agent,
      lease.attrs ?? {},
      reg,
      {
        taskId: lease.task.id,
        intent: lease.intent.action,
        tool: lease.intent.tool,
        ttl: Math.ceil((lease.expires_at - this.now()) / 1000),
      },
      meta.requestId,
      lease,
      { dpop, withAction: true },
    );
    return this.afterDecision(recorded, async () => {
      const entry = await this.o.secrets.read<AccountRecord>(
        vaultPaths.account(lease.resource, lease.account),
      );
      if (entry?.data.state !== "leased" || entry.data.lease_id !== lease.id) {
        throw new LeaseholdError("conflict", "the account is no longer held by this lease", {
          detail: `vault state ${entry?.data.state ?? "missing"}`,
        });
      }
      await this.auditLease(lease, { event: "reveal", request_id: meta.requestId, scope: "reveal" });
      return {
        username: entry.data.username,
        password: entry.data.password,
        connection: reg.connection,
        expires_at: new Date(lease.expires_at).toISOString(),
      };
    });
  }

  async renew(
    token: string | PresentedToken,
    leaseId: string,
    body: unknown,
    meta: RequestMeta,
  ): Promise<{ lease: LeaseView }> {
    const req = parseBody(renewSchema, body ?? {});
    const { lease, dpop } = await this.authenticate(token, leaseId, meta.requestId);
    const reg = await this.resource(lease.resource);
    const ttl = Math.min(req.ttl ?? reg.lease.defaultTtl, reg.lease.maxTtl);
    const { recorded } = await this.evaluate(
      "renew",
      lease.agent,
      lease.attrs ?? {},
      reg,
      { taskId: lease.task.id, intent: lease.intent.action, tool: lease.intent.tool, ttl },
      meta.requestId,
      lease,
      { dpop, withAction: true },
    );
    return this.afterDecision(recorded, async () => {
      const r = await this.o.leases.renew(lease.resource, lease.id, ttl * 1000);
      if (!r.ok || !r.lease) throw new LeaseholdError("lease_expired", "the lease can no longer be renewed");
      await this.auditLease(r.lease, { event: "renew", request_id: meta.requestId, scope: "renew" });
      await this.o.leases.emit({
        type: "renewed",
        resource: lease.resource,
        account: lease.account,
        lease_id: lease.id,
        agent: lease.agent,
      });
      return { lease: leaseView(r.lease) };
    });
  }

  async toolCall(
    token: string | PresentedToken,
    leaseId: string,
    body: unknown,
    meta: RequestMeta,
  ): Promise<void> {
    const req = parseBody(toolCallSchema, body);
    const { lease, dpop } = await this.authenticate(token, leaseId, meta.requestId);
    const reg = await this.resource(lease.resource);
    const { recorded } = await this.evaluate(
      "tool_call",
      lease.agent,
      lease.attrs ?? {},
      reg,
      {
        taskId: lease.task.id,
        intent: req.action,
        tool: req.tool,
        ttl: Math.ceil((lease.expires_at - this.now()) / 1000),
      },
      meta.requestId,
      lease,
      { dpop, withAction: true },
    );
    await this.afterDecision(recorded, () =>
      this.auditLease(lease, {
        event: "tool_call",
        tool: req.tool,
        intent: req.action,
        target: req.target,
        digest: req.digest,
        request_id: meta.requestId,
        scope: "tool_call",
      }),
    );
  }

  /** Check-in by the holder: always allowed; rotation follows. */
  async checkin(
    token: string | PresentedToken,
    leaseId: string,
    meta: RequestMeta,
  ): Promise<{ lease: LeaseView }> {
    const { lease } = await this.authenticate(token, leaseId, meta.requestId);
    const ended = await this.endLease(lease.resource, lease.id, "checkin", meta.requestId);
    return { lease: leaseView(ended ?? lease) };
  }

  /** Operator revocation. */
  async revoke(
    leaseId: string,
    reason: string | undefined,
    actor: string,
    meta: RequestMeta,
  ): Promise<{ lease: LeaseView }> {
    const resource = await this.o.leases.resourceOf(leaseId);
    const lease = resource ? await this.o.leases.get(resource, leaseId) : null;
    if (!resource || !lease) throw new LeaseholdError("not_found", "no such lease");
    const ended = await this.endLease(
      resource,
      leaseId,
      "revoked",
      meta.requestId,
      reason ?? `revoked by ${actor}`,
    );
    return { lease: leaseView(ended ?? lease) };
  }

  /** Revokes every active lease of one agent at once. */
  async revokeAgent(
    agent: string,
    reason: string | undefined,
    actor: string,
    meta: RequestMeta,
  ): Promise<{ leases: LeaseView[] }> {
    const out: LeaseView[] = [];
    for (const { resource, id } of await this.o.leases.agentLeases(agent)) {
      const ended = await this.endLease(
        resource,
        id,
        "revoked",
        meta.requestId,
        reason ?? `revoked by ${actor}`,
      );
      if (ended) out.push(leaseView(ended));
    }
    return { leases: out };
  }

  /** Revokes every active lease of one resource at once. */
  async revokeResource(
    resource: string,
    reason: string | undefined,
    actor: string,
    meta: RequestMeta,
  ): Promise<{ leases: LeaseView[] }> {
    await this.resource(resource);
    const out: LeaseView[] = [];
    for (const l of await this.o.leases.activeLeases(resource)) {
      const ended = await this.endLease(
        resource,
        l.id,
        "revoked",
        meta.requestId,
        reason ?? `revoked by ${actor}`,
      );
      if (ended) out.push(leaseView(ended));
    }
    return { leases: out };
  }

  /**
   * Ends a lease once (whoever is first: holder, reaper, operator), audits it and schedules the
   * rotation. Returns the ended lease, or null when it had already ended.
   */
  async endLease(
    resource: string,
    id: string,
    reason: EndReason,
    requestId?: string,
    why?: string,
  ): Promise<LeaseRecord | null> {
    const r = await this.o.leases.end(resource, id, reason);
    if (!r.ended) return null;
    const lease = r.lease;
    const event = reason === "checkin" ? "checkin" : reason === "expired" ? "expiry" : "revocation";
    await this.auditLease(lease, { event, request_id: requestId, reason: why });
    this.events.emit("ended", lease);
    await this.o.leases.emit({
      type: "ended",
      resource,
      account: lease.account,
      lease_id: id,
      agent: lease.agent,
      reason,
    });
    this.o.rotation.schedule({
      resource,
      account: lease.account,
      reason,
      leaseId: id,
      subject: {
        agent: lease.agent,
        agent_chain: lease.agent_chain,
        approver: lease.approver,
        task_id: lease.task.id,
      },
    });
    return lease;
  }

  async getAny(leaseId: string): Promise<LeaseView> {
    const resource = await this.o.leases.resourceOf(leaseId);
    const lease = resource ? await this.o.leases.get(resource, leaseId) : null;
    if (!lease) throw new LeaseholdError("not_found", "no such lease");
    return leaseView(lease);
  }

  async list(filter: {
    resource?: string | undefined;
    agent?: string | undefined;
    state?: string | undefined;
  }) {
    const now = await this.o.leases.now();
    const names = filter.resource ? [filter.resource] : await this.o.leases.resources();
    const out: Array<LeaseView & { ttl_seconds: number }> = [];
    if (filter.state === "ended") return { leases: out };
    for (const name of names) {
      for (const l of await this.o.leases.activeLeases(name)) {
        if (filter.agent && l.agent !== filter.agent) continue;
        out.push({ ...leaseView(l), ttl_seconds: Math.max(0, Math.round((l.expires_at - now) / 1000)) });
      }
    }
    out.sort((a, b) => (a.expires_at ?? "").localeCompare(b.expires_at ?? ""));
    return { leases: out };
  }
}
