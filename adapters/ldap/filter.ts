/**
 * Escapes a string as an RFC 4515 filter assertion value: `*`, `(`, `)`, `\` and NUL (and
 * the other control characters) become `\XX` hex pairs, so a value like `*)(uid=*` matches
 * itself literally instead of widening the filter. For adapters or DBAs' templates that
 * look accounts up with a search filter.
 */
export function escapeFilterValue(value: string): string {
  return [...value]
    .map((ch) =>
      "*()\\".includes(ch) || ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f
        ? [...Buffer.from(ch, "utf8")].map((b) => `\\${b.toString(16).padStart(2, "0")}`).join("")
        : ch,
    )
    .join("");
}
