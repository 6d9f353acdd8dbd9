/** True when `text` holds a C0 control character (NUL included) or DEL. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/**
 * The checks every adapter that takes "any printable name" shares: refuses empty names,
 * control characters (NUL included), unpaired UTF-16 surrogates (no UTF-8 form) and names
 * longer than `maxChars` characters. Returns the problem or null.
 */
export function checkPrintableName(name: string, maxChars: number): string | null {
  if (name.length === 0) return "account name is empty";
  if (hasControlCharacter(name)) return "account name contains a control character (NUL, newline, ...)";
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(name)) {
    return "account name contains an unpaired UTF-16 surrogate";
  }
  const chars = [...name].length;
  if (chars > maxChars) return `account name is ${chars} characters long; at most ${maxChars}`;
  return null;
}
