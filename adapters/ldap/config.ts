import { z } from "zod";
import { checkAccountDnTemplate } from "./dn.js";

/** TLS settings for ldaps:// or StartTLS. */
const tls = z.strictObject({
  /** Refuse a server certificate that does not chain to a trusted CA or does not name the host. @default true */
  rejectUnauthorized: z.boolean().optional(),
  /** PEM bundle of the CA(s) to trust instead of the system store. */
  ca: z.string().min(1).optional(),
  /** Host name to check the certificate against (and send as SNI). @default the URL's host */
  servername: z.string().min(1).optional(),
});

/**
 * How a password is changed on OpenLDAP-style servers:
 * - `exop`: the Password Modify extended operation (RFC 3062); the server hashes the
 *   password with its own scheme (`password-hash`, default {SSHA}) and applies ppolicy.
 * - `modify-ssha`: a modify that replaces `userPassword` with an {SSHA} hash computed here.
 * - `modify-cleartext`: a modify that replaces `userPassword` with the password itself, for
 *   servers that hash on write (389-ds, OpenLDAP with `ppolicy_hash_cleartext`).
 */
export const passwordChangeMethods = ["exop", "modify-ssha", "modify-cleartext"] as const;

/** Connection settings of an `ldap` resource (DESIGN.md adapters table). Unknown keys are refused. */
export const ldapConfig = z
  .strictObject({
    /** `ldap://host[:port]` or `ldaps://host[:port]` (protocol, host and port only). */
    url: z
      .string()
      .regex(
        /^ldaps?:\/\/[^/?#\s@]+\/?$/i,
        "must be ldap://host[:port] or ldaps://host[:port], nothing after",
      ),
    /** The account's DN, with `{account}` where the account name goes (escaped per RFC 4514). */
    accountDn: z.string().superRefine((value, ctx) => {
      const problem = checkAccountDnTemplate(value);
      if (problem !== null) ctx.addIssue({ code: "custom", message: problem });
    }),
    /** Upgrade an ldap:// connection with StartTLS before any bind. @default false */
    startTls: z.boolean().optional(),
    /** TLS settings for ldaps:// or StartTLS. */
    tls: tls.optional(),
    /** Cap on establishing one connection, ms; the call's own timeout applies anyway. */
    connectTimeoutMs: z.number().int().positive().optional(),
    /** How the password is changed (see `passwordChangeMethods`). @default "exop" */
    passwordChange: z.enum(passwordChangeMethods).optional(),
    /**
     * Active Directory: passwords are changed through `unicodePwd` (a quoted UTF-16LE value),
     * which AD only accepts over an encrypted connection; ldaps:// or startTls is required.
     * @default false
     */
    activeDirectory: z.boolean().optional(),
  })
  .superRefine((cfg, ctx) => {
    const secure = /^ldaps:/i.test(cfg.url) || cfg.startTls === true;
    if (cfg.startTls === true && /^ldaps:/i.test(cfg.url)) {
      ctx.addIssue({
        code: "custom",
        path: ["startTls"],
        message: "ldaps:// is already encrypted; startTls applies to ldap:// only",
      });
    }
    if (cfg.tls !== undefined && !secure) {
      ctx.addIssue({
        code: "custom",
        path: ["tls"],
        message: "TLS settings need ldaps:// or startTls: true (they would be ignored)",
      });
    }
    if (cfg.activeDirectory === true && !secure) {
      ctx.addIssue({
        code: "custom",
        path: ["startTls"],
        message:
          "Active Directory changes passwords only over TLS: use ldaps:// or startTls: true (refused without)",
      });
    }
    if (cfg.activeDirectory === true && cfg.passwordChange !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["passwordChange"],
        message: "does not apply to Active Directory, which always changes unicodePwd",
      });
    }
  });

/** A validated `ldap` connection. */
export type LdapTarget = z.output<typeof ldapConfig>;
