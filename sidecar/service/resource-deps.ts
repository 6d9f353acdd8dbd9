import type { Adapter, AdapterContext, Credential, Verdict } from "../../adapters/adapter.js";
import { type AuditSink, canonicalJson } from "../audit/index.js";
import { LeaseholdError } from "../errors.js";
import type { LeaseStore } from "../leases/index.js";
import type { Logger } from "../logger.js";
import type { ResourceCatalog } from "../resources/catalog.js";
import type { OwnershipIndex } from "../resources/ownership.js";
import type { AdminRotation, RotationEngine } from "../rotation/index.js";
import type { SecretStore } from "../secrets/index.js";

/** What the registration and removal use cases work with (one object, wired in sidecar/wire/). */
export interface ResourceServiceOptions {
  /** Called after a registration changes (e.g. to start or stop its local listener). */
  onRegistrationsChanged?: () => Promise<void>;
  secrets: SecretStore;
  leases: LeaseStore;
  catalog: ResourceCatalog;
  rotation: RotationEngine;
  /** Rotates admin passwords (`resources rotate NAME --admin`); absent: refused. */
  adminRotation?: Pick<AdminRotation, "rotate">;
  adapters: ReadonlyMap<string, Adapter<unknown>>;
  audit: AuditSink;
  log: Logger;
  /** The one-owner-per-account index. @default an index on `secrets` */
  owners?: OwnershipIndex;
}

/** The options with the ownership index resolved. */
export type ResourceDeps = ResourceServiceOptions & { readonly owners: OwnershipIndex };

/** What one adapter call may take, and where it logs. */
export function adapterContext(d: Pick<ResourceDeps, "log">, admin: Credential | undefined): AdapterContext {
  return { admin, log: d.log.child({ module: "adapter" }), timeoutMs: 10_000 };
}

/** The loaded adapter with this id, or 400 naming the known ones. */
export function adapterOf(d: Pick<ResourceDeps, "adapters">, id: string): Adapter<unknown> {
  const a = d.adapters.get(id);
  if (!a) {
    throw new LeaseholdError(
      "invalid_request",
      `adapter: unknown adapter "${id}" (known: ${[...d.adapters.keys()].join(", ")})`,
    );
  }
  return a;
}

/** An account's login, or the admin credential's own check where the adapter has one (LDAP bind DN, exec). */
export function checkLogin(
  adapter: Adapter<unknown>,
  connection: unknown,
  cred: Credential,
  ctx: AdapterContext,
  asAdmin: boolean,
): Promise<Verdict> {
  return asAdmin && adapter.verifyAdmin
    ? adapter.verifyAdmin(connection, cred, ctx)
    : adapter.verify(connection, cred, ctx);
}

/**
 * The account as its target knows it, for the ownership index: the adapter's own answer, or
 * else the adapter id, the validated connection settings (canonical JSON) and the account name.
 */
export function accountIdentity(adapter: Adapter<unknown>, connection: unknown, account: string): string {
  if (adapter.accountIdentity) return adapter.accountIdentity(connection, account);
  return `${adapter.id}|${canonicalJson(connection)}|${account}`;
}

/** The identity of an account of a stored registration (the default form when its adapter is not loaded). */
export function storedIdentity(
  d: ResourceDeps,
  reg: { readonly adapter: string; readonly connection: unknown },
  account: string,
): string {
  const adapter = d.adapters.get(reg.adapter);
  return adapter
    ? accountIdentity(adapter, reg.connection, account)
    : `${reg.adapter}|${canonicalJson(reg.connection)}|${account}`;
}
