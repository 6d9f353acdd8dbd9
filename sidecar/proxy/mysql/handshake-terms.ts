/** The MySQL listener's handshake terms: capabilities it offers, its refusals, the greeting's nonce. */
import { randomInt } from "node:crypto";
import { HandshakeRefusal } from "../handshake-refusal.js";
import { CAP, ER, type Greeting } from "./packets.js";
import type { ServerInfo, ServerTerms } from "./server-info.js";
import type { mysqlTargetOf } from "./target.js";

/** Capabilities never offered to clients: compression, query attributes, MFA, and what only clients set. */
export const NOT_OFFERED =
  CAP.compress |
  CAP.ssl |
  CAP.zstd |
  CAP.queryAttributes |
  CAP.multiFactorAuth |
  CAP.capabilityExtension |
  CAP.sslVerifyServerCert |
  CAP.rememberOptions;
/** The listener's own leg: what it needs to ask for caching_sha2_password. */
export const ALWAYS = CAP.protocol41 | CAP.secureConnection | CAP.pluginAuth | CAP.pluginAuthLenenc;
/** Capabilities that shape the bytes after login: the server must have each one the client chose. */
export const WIRE =
  CAP.foundRows |
  CAP.longFlag |
  CAP.localFiles |
  CAP.transactions |
  CAP.multiStatements |
  CAP.multiResults |
  CAP.psMultiResults |
  CAP.sessionTrack |
  CAP.deprecateEof |
  0x2000000; // CLIENT_OPTIONAL_RESULTSET_METADATA
/** MariaDB's COM_MULTI (extended capability bit 1) could pack a COM_CHANGE_USER: never offered. */
export const MARIADB_COM_MULTI = 2;

export function nonce(): Buffer {
  // Printable, as servers make them: no NUL for clients that read it as a string.
  return Buffer.from(Array.from({ length: 20 }, () => randomInt(0x21, 0x7f)));
}

export function accessDenied(user: string, reason: string, why = "(using password: YES)"): HandshakeRefusal {
  return new HandshakeRefusal(
    String(ER.accessDenied),
    `Access denied for user '${user.slice(0, 64)}'@'localhost' ${why}`,
    `${ER.accessDenied} ${reason}`,
  );
}

export function badHandshake(reason: string): HandshakeRefusal {
  return new HandshakeRefusal(String(ER.handshake), "Bad handshake", `${ER.handshake} ${reason}`);
}

export const SQLSTATE: Readonly<Record<string, string>> = {
  [ER.accessDenied]: "28000",
  [ER.dbAccessDenied]: "42000",
  [ER.conCount]: "08004",
  [ER.handshake]: "08S01",
  [ER.connectionKilled]: "70100",
};

export function withoutNul(b: Buffer): Buffer {
  return b.at(-1) === 0 ? b.subarray(0, -1) : b;
}

/** The server must still have what the client was offered in its name; else the client retries. */
export function checkServerTerms(
  serverInfo: ServerInfo,
  target: NonNullable<ReturnType<typeof mysqlTargetOf>>,
  g: Greeting,
  wire: number,
  wireExt: number,
  offered: ServerTerms,
): void {
  serverInfo.note(target, g);
  const missing = wire & WIRE & ~g.capabilities;
  const missingExt = wireExt & ~g.mariadbCapabilities;
  const flavour = (g.capabilities & CAP.longPassword) !== (offered.capabilities & CAP.longPassword);
  if (missing !== 0 || missingExt !== 0 || flavour) {
    throw new HandshakeRefusal(
      String(ER.unknown),
      "the database server changed; connect again",
      `${ER.unknown} the server's capabilities changed`,
    );
  }
}
