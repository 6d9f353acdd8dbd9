import type { ResourceCatalog } from "../resources/catalog.js";
import type { StoredRegistration } from "../resources/types.js";
import { type AgentRequestDeps, verifyAgent } from "./agent-request.js";
import type { PresentedToken } from "./lease-auth.js";
import type { PolicyPort, VerifiedCaller } from "./ports.js";
import type { RequestMeta } from "./request-meta.js";

export interface AgentCatalogOptions extends AgentRequestDeps {
  readonly catalog: ResourceCatalog;
  readonly policy: PolicyPort;
  /** This sidecar's listener of a resource, when one runs (the checkout's `proxy` block). */
  readonly proxyEndpoint?: ((resource: string) => unknown) | undefined;
}

/** A resource as the agent that could check it out sees it: never a connection setting or an account. */
export interface CatalogEntry {
  readonly name: string;
  /** The adapter's id: `postgres`, `mysql`, `redis`, `ldap`, ... */
  readonly adapter: string;
  readonly description?: string;
  readonly groups: string[];
  /**
   * `proxy`: sessions go through the resource's listener: it has one on this sidecar (statement
   * policy applies there), or its password is never revealed (`reveal: false`); `credential`: the
   * holder asks for the password.
   */
  readonly session: "proxy" | "credential";
}

/**
 * The resources an agent could check out (`GET /v1/catalog`), so that a model sees only what it
 * could use. A read: the identity JWT's one-time `jti` is not spent, nothing is decided and
 * nothing is audited. Registrations are read from Vault on every call; a resource is listed
 * unless its delegation's scope leaves it out or policy denies its checkout whatever the request
 * would carry (partial evaluation, `PolicyPort.couldAllow`). Resources that need a human
 * approval are listed: the checkout asks for one.
 */
export class AgentCatalog {
  constructor(private readonly o: AgentCatalogOptions) {}

  async list(
    identity: string | PresentedToken,
    meta: RequestMeta,
    delegation?: string,
  ): Promise<{ resources: CatalogEntry[] }> {
    const { caller } = await verifyAgent(this.o, identity, meta, { oneTime: false, delegation });
    const registrations = await this.o.catalog.load();
    const listens = (name: string) => this.o.proxyEndpoint?.(name) !== undefined;
    return {
      resources: registrations
        .filter((reg) => this.couldCheckOut(caller, reg))
        .map((reg) => catalogEntry(reg, listens(reg.name))),
    };
  }

  private couldCheckOut(caller: VerifiedCaller, reg: StoredRegistration): boolean {
    const scope = caller.delegation?.scope;
    if (scope !== undefined && !scope.includes(reg.name)) return false;
    return this.o.policy.couldAllow({
      principal: caller.subject,
      action: "checkout",
      resource: reg.name,
      principalAttrs: { ...caller.attributes },
      resourceGroups: [...reg.groups],
    }).possible;
  }
}

/** The catalog's view of a registration; `listening`: this sidecar runs its listener. */
export function catalogEntry(reg: StoredRegistration, listening: boolean): CatalogEntry {
  return {
    name: reg.name,
    adapter: reg.adapter,
    ...(reg.description === undefined ? {} : { description: reg.description }),
    groups: [...reg.groups],
    session: listening || !reg.reveal ? "proxy" : "credential",
  };
}
