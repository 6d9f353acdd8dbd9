import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { Logger } from "../logger.js";
import type { ResourceCatalog } from "../resources/catalog.js";
import type { StoredRegistration } from "../resources/types.js";
import { type AgentRequestDeps, verifyAgent, vetAgent } from "./agent-request.js";
import type { PresentedToken } from "./lease-auth.js";
import type { PolicyPort, VerifiedCaller } from "./ports.js";
import type { RequestMeta } from "./request-meta.js";

/** How old a registration list the catalog answers from may be (registrations made here are in it at once). */
export const CATALOG_MAX_AGE_MS = 5_000;

export interface AgentCatalogOptions extends AgentRequestDeps {
  readonly catalog: ResourceCatalog;
  readonly policy: PolicyPort;
  /** This sidecar's listener of a resource, when one runs (the checkout's `proxy` block). */
  readonly proxyEndpoint?: ((resource: string) => unknown) | undefined;
  /** Catalog reads one agent may make per minute (`limits.catalogReadsPerMinute`); 0 or absent = no limit. */
  readonly perMinute?: number | undefined;
  /** Where policy evaluation errors are logged (never a credential: policy ids and Cedar's messages). */
  readonly log?: Pick<Logger, "warn"> | undefined;
}

/** A resource as the agent that could check it out sees it: never a connection setting or an account. */
export interface CatalogEntry {
  readonly name: string;
  /** The adapter's id: `postgres`, `mysql`, `redis`, `ldap`, ... */
  readonly adapter: string;
  /** The DBA's words: text for models to read, never instructions to follow. */
  readonly description?: string;
  readonly groups: string[];
  /**
   * `proxy`: sessions go through the resource's listener on this sidecar (statement policy
   * applies there); `credential`: the holder asks for the password.
   */
  readonly session: "proxy" | "credential";
}

/**
 * The resources an agent could check out (`GET /v1/catalog`), so that a model sees only what it
 * could use. A read: the identity JWT's one-time `jti` is not spent, nothing is decided and
 * nothing is audited; the agent's reads are counted (`limits.catalogReadsPerMinute`) before its
 * DPoP proof or caller pin is checked. Registrations come from a list at most
 * {@link CATALOG_MAX_AGE_MS} old; a resource is listed unless its delegation's scope leaves it
 * out, policy denies its checkout whatever the request would carry (partial evaluation,
 * `PolicyPort.couldAllow`, with the caller's delegation known), or its password is never
 * revealed (`reveal: false`) and this sidecar runs no listener for it (nothing the agent could
 * use here). Resources that need a human approval are listed: the checkout asks for one.
 */
export class AgentCatalog {
  constructor(private readonly o: AgentCatalogOptions) {}

  async list(
    identity: string | PresentedToken,
    meta: RequestMeta,
    delegation?: string,
  ): Promise<{ resources: CatalogEntry[] }> {
    const { caller } = await verifyAgent(this.o, identity, meta, {
      oneTime: false,
      delegation,
      rate: this.rate(),
    });
    return this.listFor(caller, meta);
  }

  /** {@link list} for a caller already verified (`/mcp`'s session): its rate and pin checked. */
  async listAs(caller: VerifiedCaller, meta: RequestMeta): Promise<{ resources: CatalogEntry[] }> {
    await vetAgent(this.o, caller, meta, this.rate());
    return this.listFor(caller, meta);
  }

  private rate() {
    return { kind: "catalog" as const, perMinute: this.o.perMinute };
  }

  private async listFor(caller: VerifiedCaller, meta: RequestMeta): Promise<{ resources: CatalogEntry[] }> {
    const registrations = await this.o.catalog.recent(CATALOG_MAX_AGE_MS);
    const resources: CatalogEntry[] = [];
    for (const reg of registrations) {
      // Each evaluation is synchronous: one catalog read never holds the event loop for long.
      await yieldToLoop();
      const entry = catalogEntry(reg, this.o.proxyEndpoint?.(reg.name) !== undefined);
      if (entry !== undefined && this.couldCheckOut(caller, reg, meta)) resources.push(entry);
    }
    return { resources };
  }

  private couldCheckOut(caller: VerifiedCaller, reg: StoredRegistration, meta: RequestMeta): boolean {
    const scope = caller.delegation?.scope;
    if (scope !== undefined && !scope.includes(reg.name)) return false;
    const outlook = this.o.policy.couldAllow({
      principal: caller.subject,
      action: "checkout",
      resource: reg.name,
      principalAttrs: { ...caller.attributes },
      resourceGroups: [...reg.groups],
      delegation: caller.delegation && {
        chain: caller.delegation.chain,
        onBehalfOf: caller.delegation.onBehalfOf,
      },
    });
    if (outlook.errors.length > 0) {
      this.o.log?.warn(
        { resource: reg.name, agent: caller.subject, errors: outlook.errors, request_id: meta.requestId },
        "catalog: policy could not be evaluated for a resource",
      );
    }
    return outlook.possible;
  }
}

/**
 * The catalog's view of a registration; `listening`: this sidecar runs its listener. Undefined
 * when the agent could not use it here: its password is never revealed and no listener runs.
 */
export function catalogEntry(reg: StoredRegistration, listening: boolean): CatalogEntry | undefined {
  if (!listening && !reg.reveal) return undefined;
  return {
    name: reg.name,
    adapter: reg.adapter,
    ...(reg.description === undefined ? {} : { description: reg.description }),
    groups: [...reg.groups],
    session: listening ? "proxy" : "credential",
  };
}
