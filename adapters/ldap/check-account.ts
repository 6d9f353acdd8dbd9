import { randomBytes } from "node:crypto";
import { Attribute, Change, type Client } from "ldapts";
import type { AdapterLogger, Verdict } from "../adapter.js";
import { AdapterError } from "../adapter.js";
import { withinDeadline } from "./connection.js";
import { ResultCode, resultCode } from "./errors.js";

/** Result codes of a probe that says nothing either way (a server that refuses value deletes). */
const INCONCLUSIVE = new Set<number>([
  ResultCode.unwillingToPerform,
  ResultCode.constraintViolation,
  ResultCode.invalidAttributeSyntax,
  ResultCode.undefinedAttributeType,
  ResultCode.objectClassViolation,
]);

/** The result code an operation ended with: 0 for success, the LDAP code for a refusal. */
async function outcome(operation: Promise<unknown>, client: Client, deadline: number, action: string) {
  // withinDeadline maps ldapts errors to AdapterErrors; look at the raw result code first.
  let code = 0;
  const observed = operation.catch((err: unknown) => {
    const rc = resultCode(err);
    if (rc === undefined) throw err;
    code = rc;
  });
  await withinDeadline(client, observed, deadline, action);
  return code;
}

/**
 * As the admin bound on `client`: the entry `dn` exists and the admin may change its
 * `userPassword`, found with a modify that can only fail: delete a `userPassword` value no
 * entry holds (random). A server checks the admin's write access to the attribute before it
 * looks at the values (OpenLDAP: `acl_check_modlist`, then the delete), so the answers are
 * noSuchObject (no such entry, or one the admin may not see), insufficientAccessRights (no
 * write access), or noSuchAttribute (exists and writable). The directory changes in no case:
 * a modify that fails changes nothing. With `activeDirectory`, a unicodePwd delete would be
 * a password change attempt (and count as a failed logon), so only the entry's existence is
 * checked there, with a base search.
 * @throws AdapterError for faults.
 */
export async function checkEntryAsAdmin(opts: {
  client: Client;
  dn: string;
  admin: string;
  activeDirectory: boolean;
  deadline: number;
  log: AdapterLogger;
}): Promise<Verdict> {
  const { client, dn, admin, deadline } = opts;
  const missing = (code: number): Verdict => ({
    valid: false,
    reason: `no such entry "${dn}" (LDAP result ${code}, noSuchObject), or admin "${admin}" may not see it`,
  });
  if (opts.activeDirectory) {
    const code = await outcome(
      client.search(dn, { scope: "base", filter: "(objectClass=*)", attributes: ["1.1"] }),
      client,
      deadline,
      "search the account's entry",
    );
    if (code === ResultCode.noSuchObject) return missing(code);
    if (code !== 0)
      throw new AdapterError("failed", `ldap: search the account's entry failed (result ${code})`, false);
    return { valid: true };
  }
  const probe = `{leasehold-check}${randomBytes(18).toString("base64url")}`;
  const code = await outcome(
    client.modify(
      dn,
      new Change({
        operation: "delete",
        modification: new Attribute({ type: "userPassword", values: [probe] }),
      }),
    ),
    client,
    deadline,
    "check write access to userPassword",
  );
  if (code === ResultCode.noSuchAttribute) return { valid: true };
  if (code === ResultCode.noSuchObject) return missing(code);
  if (code === ResultCode.insufficientAccessRights) {
    return {
      valid: false,
      reason: `admin "${admin}" may not modify userPassword of "${dn}" (LDAP result ${code}, insufficientAccessRights)`,
    };
  }
  if (INCONCLUSIVE.has(code)) {
    opts.log.info(
      { adapter: "ldap", dn, result: code },
      "ldap: the server does not tell write access this way; the account is checked at its first rotation",
    );
    return { valid: true };
  }
  if (code === 0) {
    // A random value cannot have been there; should a server report success anyway, say so.
    opts.log.warn(
      { adapter: "ldap", dn },
      "ldap: the server accepted deleting a userPassword value it cannot hold",
    );
    return { valid: true };
  }
  throw new AdapterError("failed", `ldap: check write access to userPassword failed (result ${code})`, false);
}
