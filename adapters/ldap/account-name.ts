/** Upper bound on an account name, in characters (the `uid` and `cn` schema bounds are 256 and 64 to 32768). */
const MAX_NAME_CHARS = 256;

/** True when `text` holds a C0 control character (NUL included) or DEL. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/**
 * Checks that `name` can stand for one entry exactly. Any printable character is fine,
 * DN specials included (`,`, `+`, `=`, `\`, `"`, `*)(uid=*`): the name is always escaped as a
 * DN value (RFC 4514) and parsed back before use. Refused: empty names, control characters
 * (NUL included; attribute syntaxes refuse them), unpaired UTF-16 surrogates (no UTF-8 form),
 * and names over 256 characters. Returns the problem or null.
 */
export function checkLdapAccountName(name: string): string | null {
  if (name.length === 0) return "account name is empty";
  if (hasControlCharacter(name)) return "account name contains a control character (NUL, newline, ...)";
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(name)) {
    return "account name contains an unpaired UTF-16 surrogate";
  }
  const chars = [...name].length;
  if (chars > MAX_NAME_CHARS) return `account name is ${chars} characters long; at most ${MAX_NAME_CHARS}`;
  return null;
}
