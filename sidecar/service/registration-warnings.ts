import { normalizeHost } from "../../adapters/target-address.js";
import type { Registration } from "../resources/types.js";

/** The `connection` key that encrypts a listener's own connection to the server, per adapter. */
const BACKEND_TLS_KEY: Readonly<Record<string, string>> = { postgres: "ssl", "redis-acl": "tls" };

/**
 * What a registration should know but is not refused for, one line each, naming the field:
 * a listener (`proxy`) whose connection to the server is plaintext because `connection.ssl`
 * (PostgreSQL) or `connection.tls` (Redis) is not set. Agents reach the listener over TLS
 * (or loopback), but the listener's leg to the server carries every statement, every result
 * and, where the server asks for it in the clear (Redis AUTH, PostgreSQL password or md5),
 * the account's real password.
 */
export function registrationWarnings(reg: Registration, connection: unknown): string[] {
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
