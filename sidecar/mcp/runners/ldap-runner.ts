import { isIP } from "node:net";
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

/**
 * Binds as the leased account (its DN from the resource's `accountDn`) with the revealed
 * password and runs one search, bounded by `maxRows` (asked of the server as its size limit)
 * and the byte cap; the connection is closed afterwards. Password attributes are dropped.
 * @throws TargetError for a refused bind or search, never with a password.
 */
export async function runLdapSearch(login: RunnerLogin, req: LdapRequest): Promise<LdapResult> {
  if (login.kind !== "credential") {
    throw new TargetError("ldap resources have no listener: ldap_search needs a revealed credential");
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
  try {
    if (target.startTls === true) await client.startTLS(tlsOptions);
    await client.bind(accountDn(target.accountDn, login.username), login.password);
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
