/*
 * How anything shown on a terminal or a page is made harmless (see text.ts for the API's rule on
 * what it accepts). Kept free of other modules: the CLI loads it on every start.
 */

/** What a terminal or page should never receive raw: every control, format and separator character. */
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

function escapeChar(ch: string, style: "c" | "json"): string {
  const cp = ch.codePointAt(0) ?? 0;
  if (style === "c" && cp < 0x100) return `\\x${cp.toString(16).padStart(2, "0")}`;
  if (style === "c" && cp > 0xffff) return `\\u{${cp.toString(16)}}`;
  // JSON has no \u{…}: an astral character (e.g. a tag character) as its UTF-16 code units.
  let out = "";
  for (let i = 0; i < ch.length; i++) out += `\\u${ch.charCodeAt(i).toString(16).padStart(4, "0")}`;
  return out;
}

/**
 * `s` with every non-printable character shown literally: ESC becomes the four characters
 * `\x1b`, U+202E becomes `\u202e`. The result holds no control, format or separator character,
 * so it cannot move a cursor, write a clipboard or reorder what a reader sees.
 */
export function escapeText(s: string): string {
  return s.replace(NON_PRINTABLE, (ch) => escapeChar(ch, "c"));
}

/**
 * Multi-line output made safe for a terminal: each line escaped as `escapeText` does, the line
 * breaks themselves kept. For text the program composed (tables, messages) around data.
 */
export function escapeLines(s: string): string {
  return s
    .split("\n")
    .map((line) => escapeText(line))
    .join("\n");
}

/**
 * JSON text with every non-printable character that `JSON.stringify` leaves raw (C1 controls,
 * bidi marks, U+2028/U+2029, other format characters) written as a `\uXXXX` escape: the same JSON
 * value, safe to print. Valid only on JSON text, where such characters occur inside strings.
 */
export function jsonSafe(json: string): string {
  return json.replace(NON_PRINTABLE, (ch) => (ch === "\n" ? ch : escapeChar(ch, "json")));
}
