import { checkPrintableName } from "../account-name.js";

/** Upper bound on an account name, in characters (the `uid` and `cn` schema bounds are 256 and 64 to 32768). */
const MAX_NAME_CHARS = 256;

/**
 * Checks that `name` can stand for one entry exactly. Any printable character is fine,
 * DN specials included (`,`, `+`, `=`, `\`, `"`, `*)(uid=*`): the name is always escaped as a
 * DN value (RFC 4514) and parsed back before use. Refused: empty names, control characters
 * (NUL included; attribute syntaxes refuse them), unpaired UTF-16 surrogates (no UTF-8 form),
 * and names over 256 characters. Returns the problem or null.
 */
export function checkLdapAccountName(name: string): string | null {
  return checkPrintableName(name, MAX_NAME_CHARS);
}
