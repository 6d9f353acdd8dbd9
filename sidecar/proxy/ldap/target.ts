import { isIP } from "node:net";
import type { ConnectionOptions } from "node:tls";
import { type LdapTarget, ldapConfig } from "../../../adapters/ldap/index.js";

/** Where and how the listener reaches the directory of an `ldap` registration. */
export interface LdapProxyTarget {
  readonly host: string;
  readonly port: number;
  /** `implicit`: ldaps://; `starttls`: ldap:// upgraded before the bind; `none`: plaintext. */
  readonly tls: "implicit" | "starttls" | "none";
  readonly tlsOptions: ConnectionOptions;
  /** The account DN template (`{account}` where the account name goes). */
  readonly accountDn: string;
}

/**
 * The backend of a registration as the ldap adapter reads its `connection` (the same schema), or
 * null when it does not parse. TLS options are the adapter's: the certificate is checked against
 * `tls.servername`, else the URL's host name (never skipped unless `tls.rejectUnauthorized: false`).
 */
export function ldapTargetOf(connection: Record<string, unknown>): LdapProxyTarget | null {
  const r = ldapConfig.safeParse(connection);
  if (!r.success) return null;
  const target: LdapTarget = r.data;
  const url = new URL(target.url);
  const implicit = url.protocol.toLowerCase() === "ldaps:";
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const servername = target.tls?.servername ?? (isIP(host) === 0 ? host : undefined);
  return {
    host,
    port: url.port === "" ? (implicit ? 636 : 389) : Number(url.port),
    tls: implicit ? "implicit" : target.startTls === true ? "starttls" : "none",
    tlsOptions: {
      ...(servername === undefined ? {} : { servername }),
      rejectUnauthorized: target.tls?.rejectUnauthorized ?? true,
      ...(target.tls?.ca === undefined ? {} : { ca: target.tls.ca }),
    },
    accountDn: target.accountDn,
  };
}
