import type { ResourceCatalog } from "../resources/catalog.js";
import type { StoredRegistration } from "../resources/types.js";
import { type AgentRequestDeps, verifyAgent } from "./agent-request.js";
import type { PresentedToken } from "./lease-auth.js";
import type { PolicyPort, VerifiedCaller } from "./ports.js";
import type { RequestMeta } from "./request-meta.js";

export interface AgentCatalogOptions extends AgentRequestDeps {
  readonly catalog: ResourceCatalog;
  readonly policy: PolicyPort;
}

/** A resource as the agent that could check it out sees it: never a connection setting or an account. */
export interface CatalogEntry {
  readonly name: string;
  /** The adapter's id: `postgres`, `mysql`, `redis`, `ldap`, ... */
  readonly adapter: string;
  readonly description?: string;
  readonly groups: string[];
  /**
   * `proxy`: the password is never revealed (`reveal: false`) and the resource has a listener
   * (`proxy`), so sessions go through it; `credential`: the holder asks for the password.
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
    return { resources: registrations.filter((reg) => this.couldCheckOut(caller, reg)).map(catalogEntry) };
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

/** The catalog's view of a registration. */
export function catalogEntry(reg: StoredRegistration): CatalogEntry {
  return {
    name: reg.name,
    adapter: reg.adapter,
    ...(reg.description === undefined ? {} : { description: reg.description }),
    groups: [...reg.groups],
    session: !reg.reveal && reg.proxy !== undefined ? "proxy" : "credential",
  };
}
