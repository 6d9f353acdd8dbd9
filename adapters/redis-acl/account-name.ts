/** A generous cap: Redis sets none, but ACL LIST, ACL LOG and the aclfile print the name whole. */
const MAX_NAME_BYTES = 256;

/** True when `text` holds a C0 control character (NUL included) or DEL. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/**
 * Checks that `name` is an ACL user name Redis keeps exactly. Names travel as separate
 * command arguments, never inside a rule string, so quotes, `;`, `>` or `\` are harmless;
 * what is refused is what Redis refuses or what would corrupt the line-based aclfile:
 * empty names, whitespace, control characters (NUL included), and names over 256 bytes.
 * Returns the problem or null.
 */
export function checkAclUserName(name: string): string | null {
  if (name.length === 0) return "ACL user name is empty";
  if (hasControlCharacter(name)) return "ACL user name contains a control character (NUL, newline, ...)";
  if (/\s/u.test(name)) return "ACL user name contains a space or other whitespace (Redis refuses it)";
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(name)) {
    return "ACL user name contains an unpaired UTF-16 surrogate";
  }
  const bytes = Buffer.byteLength(name, "utf8");
  if (bytes > MAX_NAME_BYTES) return `ACL user name is ${bytes} bytes long; at most ${MAX_NAME_BYTES}`;
  return null;
}
