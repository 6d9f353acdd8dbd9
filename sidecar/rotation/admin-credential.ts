import type { Credential } from "../../adapters/adapter.js";
import { AdapterError } from "../../adapters/adapter.js";
import type { ResourceCatalog } from "../resources/catalog.js";

/**
 * Runs `work` with the resource's admin credential. While an admin rotation is in flight the
 * target may already have the pending password: when the target refuses the admin's login
 * (`auth_failed`), the pending one is tried, then Vault is read once more (the rotation may
 * have finished meanwhile) and any password not tried yet is tried. Other errors are thrown
 * at once.
 * @throws AdapterError auth_failed when Vault holds no admin credential or none logs in.
 */
export async function withAdminCredential<T>(
  catalog: Pick<ResourceCatalog, "adminCandidates">,
  resource: string,
  work: (admin: Credential) => Promise<T>,
): Promise<T> {
  const tried = new Set<string>();
  let refused: unknown;
  for (let round = 0; round < 2; round++) {
    for (const admin of await catalog.adminCandidates(resource)) {
      if (tried.has(admin.password)) continue;
      tried.add(admin.password);
      try {
        return await work(admin);
      } catch (err) {
        if (!(err instanceof AdapterError && err.code === "auth_failed")) throw err;
        refused = err;
      }
    }
    if (tried.size === 0) {
      throw new AdapterError("auth_failed", "the admin credential is missing from Vault", false);
    }
  }
  throw refused;
}
