import type { MysqlAccount } from "./account.js";

/**
 * Quotes a name as a MySQL identifier with backticks (doubled inside). Backslashes mean
 * nothing in identifiers under any sql_mode, so this is exact whether or not
 * NO_BACKSLASH_ESCAPES is set; account names accept identifier quoting.
 */
export function quoteIdentifier(name: string): string {
  if (name.includes("\0")) throw new Error("identifier contains NUL");
  return `\`${name.replaceAll("`", "``")}\``;
}

/** `user`@`host`, both quoted as identifiers. */
export function quoteAccount(account: MysqlAccount): string {
  return `${quoteIdentifier(account.user)}@${quoteIdentifier(account.host)}`;
}

/** True when the session's sql_mode makes backslash an ordinary character in string literals. */
export function hasNoBackslashEscapes(sqlMode: string): boolean {
  return sqlMode
    .toUpperCase()
    .split(",")
    .some((mode) => mode.trim() === "NO_BACKSLASH_ESCAPES");
}

const BACKSLASH_ESCAPES: Readonly<Record<string, string>> = {
  "\\": "\\\\",
  "'": "\\'",
  "\n": "\\n",
  "\r": "\\r",
  "\x1a": "\\Z",
};

/**
 * Quotes a string literal for a session whose sql_mode is `sqlMode`. With
 * NO_BACKSLASH_ESCAPES only quotes are special (doubled); without it backslash is the
 * escape character too, so it is escaped as well (like mysql_real_escape_string, for a
 * utf8mb4 connection).
 */
export function quoteString(value: string, sqlMode: string): string {
  if (value.includes("\0")) throw new Error("string literal contains NUL");
  if (hasNoBackslashEscapes(sqlMode)) return `'${value.replaceAll("'", "''")}'`;
  return `'${[...value].map((ch) => BACKSLASH_ESCAPES[ch] ?? ch).join("")}'`;
}
