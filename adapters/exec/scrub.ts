/** What every secret is replaced with in a command's output. */
export const REDACTED = "[redacted]";

/**
 * The forms in which a secret may appear in a command's output: as is, and as it looks
 * inside a JSON string (a command that echoes its request prints `\"` and `\\`).
 */
function forms(secret: string): string[] {
  const json = JSON.stringify(secret).slice(1, -1);
  return json === secret ? [secret] : [secret, json];
}

/**
 * Replaces every occurrence of every secret (and of its JSON-escaped form) with
 * "[redacted]". Longer forms go first, so a secret that contains another one is removed whole.
 */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  const all = [...new Set(secrets.filter((s) => s.length > 0).flatMap(forms))].sort(
    (a, b) => b.length - a.length,
  );
  let out = text;
  for (const s of all) out = out.split(s).join(REDACTED);
  return out;
}

/**
 * Scrubs, then caps `text` at `maxChars`. Scrubbing comes first so a cut can never leave
 * the beginning of a secret behind; callers capture `maxChars` plus the longest secret.
 */
export function scrubAndCap(text: string, secrets: readonly string[], maxChars: number): string {
  const clean = scrubSecrets(text, secrets);
  return clean.length <= maxChars ? clean : `${clean.slice(0, maxChars)}…[truncated]`;
}

/**
 * C0 and C1 controls, DEL, bidi overrides and isolates, line and paragraph separators: what
 * could move a terminal's cursor, rewrite what an operator reads, or split a log line.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is its purpose
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]+/g;

/**
 * What may be logged of a command's output: every secret scrubbed (before anything else, so no
 * secret survives split across a replaced character), each run of unprintable characters made
 * one space, then capped at `maxChars`. The result holds no control or bidi character.
 */
export function logExcerpt(text: string, secrets: readonly string[], maxChars: number): string {
  return scrubAndCap(scrubSecrets(text, secrets).replace(UNPRINTABLE, " ").trim(), [], maxChars);
}
