/** One token of PostgreSQL SQL, as far as the proxy's statement guard needs to tell them apart. */
export type SqlToken =
  /** An unquoted identifier or keyword, ASCII-lowercased as the server folds it. */
  | { readonly kind: "word"; readonly text: string }
  /** A double-quoted identifier: never a keyword, whatever it spells. */
  | { readonly kind: "ident" }
  /** A string constant of any form ('…', E'…', U&'…', B'…', X'…', $tag$…$tag$), with its raw content. */
  | { readonly kind: "string"; readonly content: string }
  | { readonly kind: "semicolon" }
  | { readonly kind: "other" };

export interface LexOptions {
  /**
   * Whether a backslash escapes the next character in plain '…' strings, as it does when the
   * session runs with `standard_conforming_strings = off`. E'…' strings always take escapes.
   */
  readonly backslashInPlainStrings: boolean;
}

/** The server's whitespace (scan.l `space`); other Unicode spaces are identifier characters to it. */
const SPACE = new Set([0x20, 0x09, 0x0a, 0x0d, 0x0c, 0x0b]);

const isIdentStart = (c: number) =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c >= 0x80;
const isIdentPart = (c: number) => isIdentStart(c) || (c >= 0x30 && c <= 0x39) || c === 0x24;

/** Folds ASCII letters only, as the server does for keywords (no locale, no Unicode mapping). */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** Where a quoted run that started after `open` ends (index after the closing quote), and its content. */
function quoted(
  sql: string,
  open: number,
  quote: string,
  backslash: boolean,
): { end: number; content: string } {
  let i = open + 1;
  for (;;) {
    if (i >= sql.length) return { end: sql.length, content: sql.slice(open + 1) };
    const ch = sql[i];
    if (backslash && ch === "\\") {
      i += 2;
      continue;
    }
    if (ch === quote) {
      if (sql[i + 1] === quote) {
        i += 2;
        continue;
      }
      return { end: i + 1, content: sql.slice(open + 1, i) };
    }
    i += 1;
  }
}

/** A dollar-quote opening tag at `i` (`$$` or `$tag$`), or undefined when `$` starts something else. */
function dollarTag(sql: string, i: number): string | undefined {
  const m = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(sql.slice(i, i + 256));
  return m?.[0];
}

function skipBlockComment(sql: string, from: number): number {
  let depth = 1;
  let i = from + 2;
  while (i < sql.length && depth > 0) {
    if (sql.startsWith("/*", i)) {
      depth += 1;
      i += 2;
    } else if (sql.startsWith("*/", i)) {
      depth -= 1;
      i += 2;
    } else {
      i += 1;
    }
  }
  return i;
}

/** A string-constant prefix (E, B, X, N, U&) directly before a quote at `i`, and whether it takes escapes. */
function stringPrefix(sql: string, i: number): { length: number; escapes: boolean | "as-plain" } | undefined {
  const c = sql[i];
  const next = sql[i + 1];
  if ((c === "e" || c === "E") && next === "'") return { length: 1, escapes: true };
  if ((c === "n" || c === "N") && next === "'") return { length: 1, escapes: "as-plain" };
  if ((c === "b" || c === "B" || c === "x" || c === "X") && next === "'")
    return { length: 1, escapes: false };
  if ((c === "u" || c === "U") && next === "&" && (sql[i + 2] === "'" || sql[i + 2] === '"'))
    return { length: 2, escapes: false };
  return undefined;
}

/**
 * Splits SQL text into the tokens the server's lexer would see: comments (line and nested block comments)
 * dropped, string constants and quoted identifiers kept whole so nothing inside them reads as a
 * keyword. An unterminated construct runs to the end of the text, as the server would refuse it.
 */
export function lexSql(sql: string, opts: LexOptions): SqlToken[] {
  const out: SqlToken[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql.charCodeAt(i);
    const ch = sql[i] as string;
    if (ch === "-" && sql[i + 1] === "-") {
      while (i < sql.length && sql[i] !== "\n" && sql[i] !== "\r") i += 1;
      continue;
    }
    if (ch === "/" && sql[i + 1] === "*") {
      i = skipBlockComment(sql, i);
      continue;
    }
    if (SPACE.has(c)) {
      i += 1;
      continue;
    }
    const prefix = stringPrefix(sql, i);
    if (prefix) {
      const q = sql[i + prefix.length] as string;
      const escapes = prefix.escapes === "as-plain" ? opts.backslashInPlainStrings : prefix.escapes;
      const r = quoted(sql, i + prefix.length, q, q === "'" && escapes);
      out.push(q === '"' ? { kind: "ident" } : { kind: "string", content: r.content });
      i = r.end;
      continue;
    }
    if (ch === "'") {
      const r = quoted(sql, i, "'", opts.backslashInPlainStrings);
      out.push({ kind: "string", content: r.content });
      i = r.end;
      continue;
    }
    if (ch === '"') {
      i = quoted(sql, i, '"', false).end;
      out.push({ kind: "ident" });
      continue;
    }
    if (ch === "$") {
      const tag = dollarTag(sql, i);
      if (tag) {
        const close = sql.indexOf(tag, i + tag.length);
        const end = close < 0 ? sql.length : close;
        out.push({ kind: "string", content: sql.slice(i + tag.length, end) });
        i = close < 0 ? sql.length : close + tag.length;
        continue;
      }
    }
    if (isIdentStart(c)) {
      let j = i + 1;
      while (j < sql.length && isIdentPart(sql.charCodeAt(j))) j += 1;
      out.push({ kind: "word", text: asciiLower(sql.slice(i, j)) });
      i = j;
      continue;
    }
    out.push(ch === ";" ? { kind: "semicolon" } : { kind: "other" });
    i += 1;
  }
  return out;
}

/** The ASCII words anywhere in `text` (inside strings and comments too), lowercased. */
export function rawWords(text: string): Set<string> {
  return new Set((text.match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []).map((w) => w.toLowerCase()));
}
