import type { OwnerEntry } from "../resources/ownership.js";
import { type ResourceDeps, storedIdentity } from "./resource-deps.js";

/** Two registrations that manage one account: found at start, reported, never fixed automatically. */
export interface OwnerConflict {
  readonly resource: string;
  readonly account: string;
  readonly owner: OwnerEntry;
}

/**
 * Gives every account of every registration its ownership entry, for registrations made before
 * the index existed (idempotent: an entry already there is left alone). An account that
 * another resource already holds is logged as an error, naming both, and left as it is: which
 * resource should keep it is the DBA's call.
 */
export async function backfillOwners(
  d: ResourceDeps,
): Promise<{ claimed: number; conflicts: OwnerConflict[] }> {
  let claimed = 0;
  const conflicts: OwnerConflict[] = [];
  for (const reg of await d.catalog.load()) {
    for (const account of reg.accounts) {
      const identity = storedIdentity(d, reg, account);
      const r = await d.owners.claim({ resource: reg.name, account, identity });
      if (r.ok) {
        if (r.created) claimed++;
        continue;
      }
      conflicts.push({ resource: reg.name, account, owner: r.owner });
      d.log.error(
        {
          resource: reg.name,
          account,
          owner: { resource: r.owner.resource, account: r.owner.account },
        },
        `two registrations manage the same account: "${reg.name}" lists ${account}, which "${r.owner.resource}" (account ${r.owner.account}) already owns; their rotations break each other's passwords: remove the account from one of them`,
      );
    }
  }
  if (claimed > 0) d.log.info({ claimed }, "ownership index: entries added for existing registrations");
  return { claimed, conflicts };
}
