import { normalizeHost } from "../../adapters/target-address.js";
import type { Registration } from "../resources/types.js";

/** The `connection` key that encrypts a listener's own connection to the server, per adapter. */
const BACKEND_TLS_KEY: Readonly<Record<string, string>> = {
  postgres: "ssl",
  mysql: "ssl",
  "redis-acl": "tls",
};

/**
 * What a registration should know but is not refused for, one line each, naming the field:
 * a listener (`proxy`) whose connection to the server is plaintext because `connection.ssl`
 * (PostgreSQL, MySQL) or `connection.tls` (Redis) is not set, or an LDAP one's url is ldap:// without
 * `connection.startTls`. Agents reach the listener over TLS
 * (or loopback), but the listener's leg to the server carries every statement, every result
 * and, where the server asks for it in the clear (Redis AUTH, PostgreSQL password or md5),
 * the account's real password.
 */
export function registrationWarnings(reg: Registration, connection: unknown): string[] {
  if (reg.adapter === "ldap") return ldapWarnings(reg, connection);
  const key = BACKEND_TLS_KEY[reg.adapter];
  if (!reg.proxy || key === undefined) return [];
  const conn = (connection ?? {}) as Record<string, unknown>;
  if (conn[key] !== undefined && conn[key] !== false) return [];
  const host = typeof conn.host === "string" ? conn.host : "";
  const where =
    normalizeHost(host) === "localhost" ? " (it stays on this machine: the host is loopback)" : "";
  return [
    `registration.connection.${key}: not set, so the listener's connection to the server is plaintext${where}: statements, results and any password the server asks for in the clear cross it unencrypted; set connection.${key} to encrypt it`,
  ];
}

/** An LDAP listener's leg to the directory is plaintext for an ldap:// url without `startTls`. */
function ldapWarnings(reg: Registration, connection: unknown): string[] {
  const conn = (connection ?? {}) as Record<string, unknown>;
  const url = typeof conn.url === "string" ? conn.url : "";
  if (!reg.proxy || /^ldaps:/i.test(url) || conn.startTls === true) return [];
  let host = "";
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, "");
  } catch {
    // The adapter's schema has checked the url already.
  }
  const where =
    normalizeHost(host) === "localhost" ? " (it stays on this machine: the host is loopback)" : "";
  return [
    `registration.connection.startTls: not set and the url is ldap://, so the listener's connection to the server is plaintext${where}: the account's real password (in its bind), searches and results cross it unencrypted; set connection.startTls: true or use ldaps://`,
  ];
}
