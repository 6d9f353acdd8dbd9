/** A cap that keeps the JSON request and the logs bounded. */
const MAX_NAME_CHARS = 1024;

/** True when `text` holds a C0 control character (NUL included) or DEL. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/**
 * Checks that `name` can go to a DBA's command exactly. It travels inside a JSON document
 * on stdin, so quotes and backslashes are harmless; refused are empty names, control
 * characters (NUL included: commands written in C or shell would cut or split on them),
 * unpaired UTF-16 surrogates (no UTF-8 form) and names over 1024 characters. Returns the
 * problem or null. A DBA's command may refuse more; it says so with exit status 64 or 67.
 */
export function checkExecAccountName(name: string): string | null {
  if (name.length === 0) return "account name is empty";
  if (hasControlCharacter(name)) return "account name contains a control character (NUL, newline, ...)";
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(name)) {
    return "account name contains an unpaired UTF-16 surrogate";
  }
  const chars = [...name].length;
  if (chars > MAX_NAME_CHARS) return `account name is ${chars} characters long; at most ${MAX_NAME_CHARS}`;
  return null;
}
