import { COM } from "./packets.js";
import { scanMysql } from "./sql-scan.js";

const ID = "([A-Za-z0-9_$]+|`(?:[^`]|``)+`)";
const USE = new RegExp(`^\\s*USE\\s+${ID}\\s*$`, "i");
const STARTS_USE = /^\s*USE\b/i;

function unquote(name: string): string {
  return name.startsWith("`") ? name.slice(1, -1).replace(/``/g, "`") : name;
}

/**
 * The database a command would make the session's default that is not one of `allowed`
 * (`proxy.databases`): COM_INIT_DB's name, or a `USE` statement's in a COM_QUERY (a `USE`
 * the listener cannot read, or text it cannot split that names `use` at all, counts as refused:
 * `"?"`). Undefined when the command changes to no other database.
 */
export function refusedDatabase(
  command: number,
  body: Buffer,
  allowed: readonly string[],
): string | undefined {
  if (command === COM.initDb) {
    const name = body.toString("utf8");
    return allowed.includes(name) ? undefined : name;
  }
  if (command !== COM.query) return undefined;
  const text = body.toString("utf8");
  if (!/use/i.test(text)) return undefined;
  const scan = scanMysql(text);
  if (!scan.ok) return /\buse\b/i.test(text) ? "?" : undefined;
  for (const s of scan.statements) {
    if (!STARTS_USE.test(s.text)) continue;
    const m = USE.exec(s.text);
    const name = m?.[1] ? unquote(m[1]) : "?";
    if (!allowed.includes(name)) return name;
  }
  return undefined;
}

/** The server's 1044 text for a database the session may not use. */
export function databaseDenied(user: string, database: string): string {
  return `Access denied for user '${user.slice(0, 64)}'@'%' to database '${database.slice(0, 64)}'`;
}
