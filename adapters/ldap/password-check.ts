import type { PasswordConstraints } from "../adapter.js";

/**
 * Checks a new password against the adapter's constraints: printable ASCII only, so it is
 * the same bytes in UTF-8 binds and in Active Directory's UTF-16LE unicodePwd. Returns the
 * problem (never the password) or null.
 */
export function checkPassword(password: string, constraints: PasswordConstraints): string | null {
  if (password.length < constraints.minLength || password.length > constraints.maxLength) {
    return `new password must be ${constraints.minLength}-${constraints.maxLength} characters long (got ${password.length})`;
  }
  if (!/^[\x20-\x7e]*$/.test(password)) return "new password must be printable ASCII";
  for (const ch of constraints.forbidden) {
    if (password.includes(ch)) return "new password holds a character the target cannot take";
  }
  return null;
}
