import type { Adapter, AdapterContext, Credential } from "../../adapters/adapter.js";
import { AdapterError } from "../../adapters/adapter.js";
import { LeaseholdError } from "../errors.js";
import { adminAsAccount } from "./admin-target.js";

/** What a registration says about admin rotation. */
export interface AdminRotationSetting {
  readonly rotateWith: "admin" | "self";
  readonly rotation: { readonly admin?: { readonly every: string } | undefined };
}

const ROOTDN_NOTE = "; an LDAP rootdn/rootpw admin has no entry and cannot be rotated";

/**
 * A registration's check of `rotation.admin`, before anything is written: it needs an admin;
 * the admin must be addressable as an account of the adapter (LDAP: a DN of one entry), and,
 * where the adapter can tell (`checkAccount`), may change its own password. Returns the line
 * the registration prints, or null when admin rotation is off.
 * @throws LeaseholdError invalid_request naming `registration.rotation.admin`.
 */
export async function checkAdminRotation(
  reg: AdminRotationSetting,
  adapter: Adapter<unknown>,
  connection: unknown,
  admin: Credential | undefined,
  ctx: AdapterContext,
): Promise<string | null> {
  const every = reg.rotation.admin?.every;
  if (every === undefined) return null;
  const field = "registration.rotation.admin";
  if (reg.rotateWith !== "admin" || !admin) {
    throw new LeaseholdError("invalid_request", `${field}: needs rotateWith: admin and an admin credential`);
  }
  let as: ReturnType<typeof adminAsAccount>;
  try {
    as = adminAsAccount(adapter.id, connection, admin.username);
  } catch (err) {
    throw new LeaseholdError("invalid_request", `${field}: ${(err as Error).message}`);
  }
  if (!adapter.checkAccount) {
    return `admin ${admin.username}: rotated every ${every} (its own password change is first tried at the first rotation)`;
  }
  try {
    const v = await adapter.checkAccount(as.target, as.account, { ...ctx, admin });
    if (!v.valid) {
      const note = adapter.id === "ldap" ? ROOTDN_NOTE : "";
      throw new LeaseholdError(
        "invalid_request",
        `${field}: the admin cannot change its own password (${v.reason})${note}`,
      );
    }
  } catch (err) {
    if (!(err instanceof AdapterError)) throw err;
    throw new LeaseholdError(
      err.retryable ? "upstream_unavailable" : "invalid_request",
      `${field}: ${err.message}`,
    );
  }
  return `admin ${admin.username} may change its own password: rotated every ${every}`;
}
