import type { AuditSink } from "../audit/index.js";
import type { LeaseEventPublisher } from "../events/index.js";
import { LeaseholdError } from "../errors.js";
import type { LeaseRecord, LeaseStore, ScramVerifier, TokenProof } from "../leases/index.js";
import type { ResourceCatalog } from "../resources/catalog.js";
import type { AccountRecord, StoredRegistration } from "../resources/types.js";
import { vaultPaths } from "../resources/vault-paths.js";
import type { SecretStore } from "../secrets/index.js";
import { agentDecision } from "./agent-decision.js";
import { attestedCaller } from "./caller-binding.js";
import type { DecisionGate, PassedDecision } from "./decision-gate.js";
import { auditLease, registeredResource, secondsLeft } from "./lease-audit.js";
import type { AuthenticatedLease, LeaseAuth, PresentedToken } from "./lease-auth.js";
import { type LeaseView, leaseView } from "./lease-view.js";
import type { PolicyActionName } from "./ports.js";
import type { RequestMeta } from "./request-meta.js";
import type { RenewRequest, ToolCallRequest } from "./requests.js";
import { toolCallFields } from "./tool-call-audit.js";

export interface LeaseUseOptions {
  readonly leases: LeaseStore;
  readonly secrets: SecretStore;
  readonly catalog: ResourceCatalog;
  readonly audit: AuditSink;
  readonly events: LeaseEventPublisher;
  readonly auth: LeaseAuth;
  readonly gate: DecisionGate;
  readonly now: () => number;
}

/** A revealed credential: the leased account's password and where to use it. */
export interface RevealedCredential {
  readonly username: string;
  readonly password: string;
  readonly connection: StoredRegistration["connection"];
  readonly expires_at: string;
}

/**
 * What the holder of a live lease may do with its token: read the lease, reveal the password
 * (policy decides), renew (policy decides), record tool calls (policy decides), and connect
 * through a local protocol listener.
 */
export class LeaseUse {
  constructor(private readonly o: LeaseUseOptions) {}

  async getOwn(token: string | PresentedToken, leaseId: string, meta?: RequestMeta): Promise<LeaseView> {
    return leaseView((await this.o.auth.authenticate(token, leaseId, meta)).lease);
  }

  /** The password of the leased account, after policy allows the reveal. */
  async credential(
    token: string | PresentedToken,
    leaseId: string,
    meta: RequestMeta,
  ): Promise<RevealedCredential> {
    const held = await this.o.auth.authenticate(token, leaseId, meta);
    const { lease } = held;
    const reg = await registeredResource(this.o.catalog, lease.resource);
    if (!reg.reveal) {
      await auditLease(this.o.audit, lease, {
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
    const { recorded } = await this.decide("reveal", held, reg, meta, {});
    return this.o.gate.proceed(recorded, async () => {
      const account = await this.heldAccount(lease);
      await auditLease(this.o.audit, lease, { event: "reveal", request_id: meta.requestId, scope: "reveal" });
      return {
        username: account.username,
        password: account.password,
        connection: reg.connection,
        expires_at: new Date(lease.expires_at).toISOString(),
      };
    });
  }

  async renew(
    token: string | PresentedToken,
    leaseId: string,
    req: RenewRequest,
    meta: RequestMeta,
  ): Promise<{ lease: LeaseView }> {
    const held = await this.o.auth.authenticate(token, leaseId, meta);
    const { lease } = held;
    const reg = await registeredResource(this.o.catalog, lease.resource);
    const ttl = Math.min(req.ttl ?? reg.lease.defaultTtl, reg.lease.maxTtl);
    const { recorded } = await this.decide("renew", held, reg, meta, { ttl });
    return this.o.gate.proceed(recorded, async () => {
      const r = await this.o.leases.renew(lease.resource, lease.id, ttl * 1000);
      if (!r.ok || !r.lease) throw new LeaseholdError("lease_expired", "the lease can no longer be renewed");
      await auditLease(this.o.audit, r.lease, { event: "renew", request_id: meta.requestId, scope: "renew" });
      await this.o.events.publish({ type: "renewed", lease: r.lease });
      return { lease: leaseView(r.lease) };
    });
  }

  async toolCall(
    token: string | PresentedToken,
    leaseId: string,
    req: ToolCallRequest,
    meta: RequestMeta,
  ): Promise<void> {
    const held = await this.o.auth.authenticate(token, leaseId, meta);
    const reg = await registeredResource(this.o.catalog, held.lease.resource);
    const { recorded } = await this.decide("tool_call", held, reg, meta, {
      intent: req.action,
      tool: req.tool,
    });
    await this.o.gate.proceed(recorded, () =>
      auditLease(
        this.o.audit,
        held.lease,
        Object.assign({ event: "tool_call" as const }, toolCallFields(req, meta), {
          scope: "tool_call" as const,
        }),
      ),
    );
  }

  /**
   * For local protocol listeners: checks the lease token exactly as the HTTP API does, that the
   * lease is for `resource`, and returns the real credential of the leased account. Audited.
   */
  async proxyCredential(
    token: string | TokenProof,
    leaseId: string,
    resource: string,
    meta: RequestMeta & { client?: string },
  ): Promise<{ lease: LeaseRecord; username: string; password: string }> {
    if (typeof token !== "string" && (token.leaseId !== leaseId || token.resource !== resource))
      throw new LeaseholdError("unauthenticated", "the proof is for another lease");
    const { lease } =
      typeof token === "string"
        ? await this.o.auth.authenticate(token, leaseId, meta)
        : await this.o.auth.authenticateByProof(token, meta);
    if (lease.resource !== resource)
      throw new LeaseholdError("unauthenticated", "the lease is for another resource");
    const account = await this.heldAccount(lease);
    await auditLease(this.o.audit, lease, {
      event: "tool_call",
      scope: "proxy_connect",
      target: meta.client,
      request_id: meta.requestId,
    });
    return { lease, username: account.username, password: account.password };
  }

  /** The SCRAM verifier of a lease's token stored at checkout (intact under its MAC), for a PostgreSQL listener. */
  async tokenVerifier(leaseId: string, resource: string): Promise<ScramVerifier | undefined> {
    return this.o.leases.tokenVerifier(resource, leaseId);
  }

  /** Asks policy about a use of the held lease; `over` replaces the lease's own intent, tool or ttl. */
  private async decide(
    action: PolicyActionName,
    held: AuthenticatedLease,
    reg: StoredRegistration,
    meta: RequestMeta,
    over: { intent?: string; tool?: string; ttl?: number },
  ): Promise<PassedDecision> {
    const { lease } = held;
    const now = this.o.now();
    return this.o.gate.evaluate(
      agentDecision({
        action,
        agent: lease.agent,
        attrs: lease.attrs ?? {},
        reg,
        taskId: lease.task.id,
        intent: over.intent ?? lease.intent.action,
        tool: over.tool ?? lease.intent.tool,
        ttl: over.ttl ?? secondsLeft(lease, now),
        now,
        activeLeases: await this.o.leases.activeCount(lease.agent),
        dpop: held.dpop,
        chain: lease.agent_chain,
        // The caller of this request (attested once per connection), as the binding saw it.
        caller: held.caller ?? (await attestedCaller(meta)),
        lease,
        requestId: meta.requestId,
        withAction: true,
      }),
    );
  }

  /** The account record in Vault, as long as Vault still says this lease holds it. */
  private async heldAccount(lease: LeaseRecord): Promise<AccountRecord> {
    const entry = await this.o.secrets.read<AccountRecord>(vaultPaths.account(lease.resource, lease.account));
    if (entry?.data.state !== "leased" || entry.data.lease_id !== lease.id) {
      throw new LeaseholdError("conflict", "the account is no longer held by this lease", {
        detail: `vault state ${entry?.data.state ?? "missing"}`,
      });
    }
    return entry.data;
  }
}
