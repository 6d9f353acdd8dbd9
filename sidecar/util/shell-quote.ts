/** Characters a POSIX shell passes through unquoted and unchanged in a word. */
const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * One argument for a POSIX shell (sh, bash, zsh): unchanged when it holds only safe characters,
 * else in single quotes, each `'` written as `'\''`. Pasted into a shell, the word is exactly `s`.
 */
export function shellQuote(s: string): string {
  if (SAFE_WORD.test(s)) return s;
  return `'${s.replaceAll("'", "'\\''")}'`;
}
