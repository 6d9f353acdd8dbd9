import { randomBytes } from "node:crypto";
import type { TestSlapd } from "../support/slapd.js";
import type { ProxyHarness } from "./harness.js";

/**
 * Adds `names` to the directory with fresh passwords (kept among the harness' secrets, with the
 * directory's admin and rotator passwords) and returns them by name.
 */
export async function addLdapAccounts(
  h: ProxyHarness,
  slapd: TestSlapd,
  names: readonly string[],
): Promise<Map<string, string>> {
  h.secrets.push(slapd.admin.password, slapd.rotator.password);
  const passwords = new Map<string, string>();
  for (const name of names) {
    const pw = `ldap-${randomBytes(15).toString("base64url")}`;
    passwords.set(name, pw);
    h.secrets.push(pw);
    await slapd.addUser(name, pw);
  }
  return passwords;
}

/** What every proxied LDAP registration of these tests shares: rotation by the rotator, no reveal. */
export function ldapRegistrationBase(slapd: TestSlapd) {
  return {
    adapter: "ldap",
    admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
    importRotation: false,
    reveal: false,
    rotation: { terminateSessions: false },
  };
}
