import type { Adapter } from "./adapter.js";
import { execAdapter } from "./exec/index.js";
import { ldapAdapter } from "./ldap/index.js";
import { mysqlAdapter } from "./mysql/index.js";
import { postgresAdapter } from "./postgres/index.js";
import { redisAclAdapter } from "./redis-acl/index.js";

/**
 * The adapters leasehold ships, by id: an explicit list, nothing is discovered from folders.
 * Targets are `unknown` here; callers validate them with `adapter.config` before any call.
 */
export const builtinAdapters: ReadonlyMap<string, Adapter<unknown>> = new Map<string, Adapter<unknown>>([
  [postgresAdapter.id, postgresAdapter],
  [mysqlAdapter.id, mysqlAdapter],
  [ldapAdapter.id, ldapAdapter],
  [redisAclAdapter.id, redisAclAdapter],
  [execAdapter.id, execAdapter],
]);

/** The built-in adapter with this id, or undefined. */
export function getAdapter(id: string): Adapter<unknown> | undefined {
  return builtinAdapters.get(id);
}
