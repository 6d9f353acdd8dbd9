/** The longest text given a shape: longer statements are parsed each time (and the cache stays small). */
export const MAX_SHAPED_CHARS = 2048;

/** Marks a masked literal in a shape; text that holds it anywhere gets no shape. */
const MARK = "\u0001";
/** A masked plain string constant, and a masked integer constant of at most 9 digits. */
const STRING_MARK = `${MARK}s`;
const INTEGER_MARK = `${MARK}i`;

/** Where a masked literal was in the text (`spans` of {@link pgStatementShape}, for tests). */
export interface LiteralSpan {
  readonly start: number;
  readonly end: number;
  readonly kind: "string" | "integer";
}

/** An ASCII letter, `_`, or any non-ASCII character: what an identifier starts with (scan.l `ident_start`). */
const isIdentStart = (c: number) =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c >= 0x80;
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
/**
 * What may not touch a masked literal: an identifier character (`$` included), `.`, and `&`
 * (`U&'…'`). A string or an integer next to one of these may be part of a longer token
 * (`E'…'`, `x'1F'`, `1.5`, `1e5`, `0x1F`, `1_000`, `t1`): it is kept as written.
 */
const joins = (c: number) => isIdentStart(c) || isDigit(c) || c === 0x24 || c === 0x2e || c === 0x26;

/** Whether the digits at `i` may be the end of a longer token: after `joins`, or an exponent's (`1E-3`). */
function joinsBefore(sql: string, i: number): boolean {
  if (i === 0) return false;
  const c = sql.charCodeAt(i - 1);
  if (joins(c)) return true;
  const e = sql.charCodeAt(i - 2);
  return (c === 0x2b || c === 0x2d) && (e === 0x45 || e === 0x65);
}

/**
 * The statement's text with its literals masked, as PostgreSQL's lexer (scan.l) reads it with
 * `standard_conforming_strings` on; undefined whenever this reading is not sure. Two texts of one
 * shape differ only in the contents of plain string constants ('…', quotes doubled) and of
 * integer constants of 1 to 9 digits, at the same places, so PostgreSQL's grammar reads them as
 * the same tree but for those constants' values. Everything else is kept as written.
 *
 * It gives up (undefined) on what it does not read itself: a backslash anywhere (escape strings,
 * a session with standard_conforming_strings off), `$` outside a string (dollar quotes,
 * parameters), comments (`--`, `/*`), a quote next to an identifier character or `&` (E'…',
 * B'…', X'…', N'…', U&'…', typed literals written without a space), `U&"…"` (its UESCAPE
 * string would change the identifier), an unterminated string or quoted identifier, the mark
 * character, and text longer than {@link MAX_SHAPED_CHARS}. `spans`, when given, receives where
 * each masked literal was.
 *
 * PostgreSQL's grammar checks a few constants' values itself (`float(54)`: "precision … must be
 * less than 54 bits"): such a text fails to parse where another of its shape parsed, and the
 * server's grammar refuses it as well; no text of a shape has a tree other than the shape's.
 */
export function pgStatementShape(sql: string, spans?: LiteralSpan[]): string | undefined {
  if (sql.length > MAX_SHAPED_CHARS || sql.includes(MARK) || sql.includes("\\")) return undefined;
  let out = "";
  let from = 0;
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === 0x27 /* ' */) {
      if (i > 0 && joins(sql.charCodeAt(i - 1))) return undefined;
      let j = i + 1;
      for (;;) {
        j = sql.indexOf("'", j);
        if (j < 0) return undefined;
        if (sql.charCodeAt(j + 1) !== 0x27) break;
        j += 2;
      }
      out += sql.slice(from, i) + STRING_MARK;
      spans?.push({ start: i, end: j + 1, kind: "string" });
      i = j + 1;
      from = i;
      continue;
    }
    if (c === 0x22 /* " */) {
      // U&"…" UESCAPE '…': the escape character, a string constant, changes the identifier.
      if (i > 0 && sql.charCodeAt(i - 1) === 0x26) return undefined;
      let j = i + 1;
      for (;;) {
        j = sql.indexOf('"', j);
        if (j < 0) return undefined;
        if (sql.charCodeAt(j + 1) !== 0x22) break;
        j += 2;
      }
      i = j + 1;
      continue;
    }
    if (isIdentStart(c)) {
      i += 1;
      while (i < n) {
        const d = sql.charCodeAt(i);
        if (d === 0x24) return undefined;
        if (!(isIdentStart(d) || isDigit(d))) break;
        i += 1;
      }
      continue;
    }
    if (isDigit(c)) {
      let j = i + 1;
      while (j < n && isDigit(sql.charCodeAt(j))) j += 1;
      if (j - i <= 9 && !joinsBefore(sql, i) && !(j < n && joins(sql.charCodeAt(j)))) {
        out += sql.slice(from, i) + INTEGER_MARK;
        spans?.push({ start: i, end: j, kind: "integer" });
        from = j;
      }
      i = j;
      continue;
    }
    if (c === 0x24 /* $ */) return undefined;
    if (c === 0x2d /* - */ && sql.charCodeAt(i + 1) === 0x2d) return undefined;
    if (c === 0x2f /* / */ && sql.charCodeAt(i + 1) === 0x2a) return undefined;
    i += 1;
  }
  return out + sql.slice(from);
}
