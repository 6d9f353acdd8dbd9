/** PostgreSQL's NAMEDATALEN - 1: longer identifiers are silently truncated by the server. */
const MAX_NAME_BYTES = 63;

/**
 * Checks that `name` is a role name PostgreSQL keeps exactly: not empty, no NUL, at most
 * 63 bytes of UTF-8 (a longer one would be truncated and name another role). Any other
 * character is fine because names are always quoted. Returns the problem or null.
 */
export function checkRoleName(name: string): string | null {
  if (name.length === 0) return "role name is empty";
  if (name.includes("\0")) return "role name contains a NUL character";
  const bytes = Buffer.byteLength(name, "utf8");
  if (bytes > MAX_NAME_BYTES) {
    return `role name is ${bytes} bytes long; PostgreSQL keeps at most ${MAX_NAME_BYTES} (it would truncate it)`;
  }
  return null;
}
