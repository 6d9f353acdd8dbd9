import { createHash, randomBytes } from "node:crypto";
import { Attribute, BerWriter, Change, type Client } from "ldapts";
import type { LdapTarget } from "./config.js";
import { withinDeadline } from "./connection.js";

/** RFC 3062 Password Modify extended operation. */
const PASSWORD_MODIFY_OID = "1.3.6.1.4.1.4203.1.11.1";
const SSHA_SALT_BYTES = 8;

/** The mechanism a target uses, from its settings. */
export type ChangeMethod = "exop" | "modify-ssha" | "modify-cleartext" | "unicodePwd";

/** Which mechanism changes passwords on `target`. */
export function changeMethod(target: LdapTarget): ChangeMethod {
  return target.activeDirectory === true ? "unicodePwd" : (target.passwordChange ?? "exop");
}

/**
 * The `{SSHA}` form of a password (salted SHA-1, as slappasswd writes it): OpenLDAP and
 * most servers check binds against it, and the directory never holds the plaintext.
 */
export function sshaHash(password: string, salt: Buffer = randomBytes(SSHA_SALT_BYTES)): string {
  const digest = createHash("sha1").update(password, "utf8").update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString("base64")}`;
}

/**
 * The BER value of a PasswdModifyRequest (RFC 3062 section 2):
 * SEQUENCE { userIdentity [0] OPTIONAL, oldPasswd [1] OPTIONAL, newPasswd [2] OPTIONAL }.
 */
export function passwordModifyRequest(fields: {
  userIdentity?: string | undefined;
  oldPasswd?: string | undefined;
  newPasswd: string;
}): Buffer {
  const writer = new BerWriter();
  writer.startSequence();
  if (fields.userIdentity !== undefined) writer.writeString(fields.userIdentity, 0x80);
  if (fields.oldPasswd !== undefined) writer.writeString(fields.oldPasswd, 0x81);
  writer.writeString(fields.newPasswd, 0x82);
  writer.endSequence();
  return writer.buffer;
}

/** Active Directory's unicodePwd value: the password in double quotes, UTF-16LE encoded. */
export function unicodePwdValue(password: string): Buffer {
  return Buffer.from(`"${password}"`, "utf16le");
}

function replace(type: string, value: string | Buffer): Change {
  const modification =
    typeof value === "string"
      ? new Attribute({ type, values: [value] })
      : new Attribute({ type, values: [value] });
  return new Change({ operation: "replace", modification });
}

/**
 * As an administrator bound on `client`: sets the password of the entry `dn` to `next`.
 * Never creates an entry: a missing one fails with noSuchObject.
 */
export async function setPasswordAsAdmin(
  client: Client,
  method: ChangeMethod,
  dn: string,
  next: string,
  deadline: number,
): Promise<void> {
  switch (method) {
    case "exop":
      await withinDeadline(
        client,
        client.exop(PASSWORD_MODIFY_OID, passwordModifyRequest({ userIdentity: dn, newPasswd: next })),
        deadline,
        "Password Modify",
      );
      return;
    case "modify-ssha":
      await withinDeadline(
        client,
        client.modify(dn, replace("userPassword", sshaHash(next))),
        deadline,
        "modify",
      );
      return;
    case "modify-cleartext":
      await withinDeadline(client, client.modify(dn, replace("userPassword", next)), deadline, "modify");
      return;
    case "unicodePwd":
      // An administrator's reset is a replace; AD demands the user's old password only for self changes.
      await withinDeadline(
        client,
        client.modify(dn, replace("unicodePwd", unicodePwdValue(next))),
        deadline,
        "modify unicodePwd",
      );
      return;
  }
}

/** As the account itself, bound on `client` with `current`: changes its own password to `next`. */
export async function setOwnPassword(
  client: Client,
  method: ChangeMethod,
  dn: string,
  current: string,
  next: string,
  deadline: number,
): Promise<void> {
  switch (method) {
    case "exop":
      // No userIdentity: the operation applies to the bound identity; the server re-checks oldPasswd.
      await withinDeadline(
        client,
        client.exop(PASSWORD_MODIFY_OID, passwordModifyRequest({ oldPasswd: current, newPasswd: next })),
        deadline,
        "Password Modify",
      );
      return;
    case "modify-ssha":
      await withinDeadline(
        client,
        client.modify(dn, replace("userPassword", sshaHash(next))),
        deadline,
        "modify",
      );
      return;
    case "modify-cleartext":
      await withinDeadline(client, client.modify(dn, replace("userPassword", next)), deadline, "modify");
      return;
    case "unicodePwd":
      // AD's user change: delete the old value and add the new one in one modify.
      await withinDeadline(
        client,
        client.modify(dn, [
          new Change({
            operation: "delete",
            modification: new Attribute({ type: "unicodePwd", values: [unicodePwdValue(current)] }),
          }),
          new Change({
            operation: "add",
            modification: new Attribute({ type: "unicodePwd", values: [unicodePwdValue(next)] }),
          }),
        ]),
        deadline,
        "modify unicodePwd",
      );
      return;
  }
}
