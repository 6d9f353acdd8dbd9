import { isIP } from "node:net";
import type { ConnectionOptions } from "node:tls";
import { Client } from "ldapts";
import { accountDn, ldapConfig } from "../../../adapters/ldap/index.js";
import { BoundedList, jsonValue, scrub } from "./bounds.js";
import { CALL_TIMEOUT_MS, type RunnerLogin, TargetError } from "./login.js";

export interface LdapRequest {
  readonly base: string;
  readonly scope: "base" | "one" | "sub";
  readonly filter: string;
  readonly attributes: readonly string[];
  readonly maxRows: number;
}

export interface LdapEntry {
  dn: string;
  attributes: Record<string, string[]>;
}

export interface LdapResult {
  entries: LdapEntry[];
  truncated: boolean;
}

/** Attributes never returned, whatever was asked: password hashes. */
const HIDDEN = new Set(["userpassword", "unicodepwd", "authpassword"]);

function entryOf(raw: Record<string, unknown>): LdapEntry {
  const attributes: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k === "dn" || HIDDEN.has(k.toLowerCase())) continue;
    const values = Array.isArray(v) ? v : [v];
    attributes[k] = values.map((x) => String(jsonValue(x)));
  }
  return { dn: String(raw.dn), attributes };
}

/** A client for the call, and the DN and password it binds with (StartTLS options when the target asks). */
function connectionFor(login: RunnerLogin): {
  client: Client;
  dn: string;
  startTls?: ConnectionOptions;
} {
  if (login.kind === "proxy") {
    // The resource's listener on loopback: bind DN cn=<lease id>, the token as password.
    const url = `ldap://${login.host.includes(":") ? `[${login.host}]` : login.host}:${login.port}`;
    return {
      client: new Client({ url, connectTimeout: 10_000, timeout: CALL_TIMEOUT_MS }),
      dn: `cn=${login.user}`,
    };
  }
  const target = ldapConfig.parse(login.connection);
  const host = new URL(target.url).hostname.replace(/^\[|\]$/g, "");
  const tlsOptions = {
    ...(isIP(host) === 0 ? { servername: target.tls?.servername ?? host } : {}),
    rejectUnauthorized: target.tls?.rejectUnauthorized ?? true,
    ...(target.tls?.ca === undefined ? {} : { ca: target.tls.ca }),
  };
  const client = new Client({
    url: target.url,
    connectTimeout: target.connectTimeoutMs ?? 10_000,
    timeout: CALL_TIMEOUT_MS,
    ...(/^ldaps:/i.test(target.url) ? { tlsOptions } : {}),
  });
  return {
    client,
    dn: accountDn(target.accountDn, login.username),
    ...(target.startTls === true ? { startTls: tlsOptions } : {}),
  };
}

/**
 * Binds as the leased account, at the resource's listener (`cn=<lease id>` and the token) or
 * with the revealed password (its DN from the resource's `accountDn`), and runs one search,
 * bounded by `maxRows` (asked of the server as its size limit) and the byte cap; the connection
 * is closed afterwards. Password attributes are dropped.
 * @throws TargetError for a refused bind or search, never with a password.
 */
export async function runLdapSearch(login: RunnerLogin, req: LdapRequest): Promise<LdapResult> {
  const { client, dn, startTls } = connectionFor(login);
  try {
    if (startTls !== undefined) await client.startTLS(startTls);
    await client.bind(dn, login.password);
    const { searchEntries } = await client.search(req.base, {
      scope: req.scope,
      filter: req.filter,
      ...(req.attributes.length > 0 ? { attributes: [...req.attributes] } : {}),
      sizeLimit: req.maxRows + 1,
      timeLimit: Math.ceil(CALL_TIMEOUT_MS / 1000),
    });
    const entries = new BoundedList<LdapEntry>(req.maxRows);
    for (const e of searchEntries) if (!entries.push(entryOf(e as Record<string, unknown>))) break;
    return { entries: entries.items, truncated: entries.truncated };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const name = err instanceof Error && err.name !== "Error" ? `${err.name}: ` : "";
    throw new TargetError(scrub(`${name}${message}`, [login.password]));
  } finally {
    await client.unbind().catch(() => undefined);
  }
}
