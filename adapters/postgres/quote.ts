/**
 * Quotes a string as a PostgreSQL identifier, like the server's `quote_ident` but always
 * quoting: the name is taken exactly (case, spaces, quotes, unicode) and can never end the
 * identifier early. NUL cannot be represented and is refused.
 */
export function quoteIdent(name: string): string {
  if (name.includes("\0")) throw new Error("identifier contains NUL");
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Quotes a string as a PostgreSQL literal, like the server's `quote_literal`: quotes are
 * doubled, and a value holding a backslash becomes an `E'...'` literal with backslashes
 * doubled, so the result means the same whatever `standard_conforming_strings` is.
 */
export function quoteLiteral(value: string): string {
  if (value.includes("\0")) throw new Error("literal contains NUL");
  const quoted = value.replaceAll("'", "''");
  return value.includes("\\") ? `E'${quoted.replaceAll("\\", "\\\\")}'` : `'${quoted}'`;
}
