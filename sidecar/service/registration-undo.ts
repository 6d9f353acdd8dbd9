import type { Credential } from "../../adapters/adapter.js";
import type { AccountRecord } from "../resources/types.js";
import { vaultPaths } from "../resources/vault-paths.js";
import type { RotationOutcome } from "../rotation/index.js";
import type { ValidRegistration } from "./registration-checks.js";
import { adapterContext, type ResourceDeps } from "./resource-deps.js";

/** What became of a new account's Vault record when its registration was undone. */
export interface Discarded {
  readonly record: "removed" | "kept";
  /** Why a record was kept (empty when removed). */
  readonly why: string;
}

/**
 * Undoes a new account's Vault record after its registration failed, keeping I3 (never lose a
 * working password): the record goes only when it provably holds no password the target may now
 * use: no import rotation changed anything (no pending password, and the password is the one
 * the DBA gave, or none), or the target refused the change outright and the pending password
 * does not log in. Otherwise the record stays, and `why` says so.
 */
export async function discardNewAccount(
  d: Pick<ResourceDeps, "secrets" | "log">,
  v: ValidRegistration,
  account: { name: string; password?: string | undefined },
  outcome: RotationOutcome | undefined,
): Promise<Discarded> {
  const path = vaultPaths.account(v.reg.name, account.name);
  const entry = await d.secrets.read<AccountRecord>(path);
  if (!entry) return { record: "removed", why: "" };
  const rec = entry.data;
  const given = account.password ?? "";
  let keep = "";
  if (!rec.pending_password) {
    if (rec.password !== given) {
      keep = "its import rotation succeeded, so the record holds the account's only working password";
    }
  } else if (!(outcome?.status === "failed" && outcome.retryable === false)) {
    keep = `the new password may have reached the target before the import failed (${outcomeText(outcome)})`;
  } else if (await pendingMayWork(d, v, { username: rec.username, password: rec.pending_password })) {
    keep = "the target accepts the new password the import set";
  }
  if (keep) return { record: "kept", why: keep };
  await d.secrets.remove(path);
  return { record: "removed", why: "" };
}

/** True unless the target answers that this password does not log in. */
async function pendingMayWork(
  d: Pick<ResourceDeps, "log">,
  v: ValidRegistration,
  cred: Credential,
): Promise<boolean> {
  try {
    const verdict = await v.adapter.verify(v.connection, cred, adapterContext(d, undefined));
    return verdict.valid;
  } catch {
    return true;
  }
}

function outcomeText(outcome: RotationOutcome | undefined): string {
  if (!outcome) return "not run";
  return outcome.status === "failed" ? outcome.error : outcome.status;
}
