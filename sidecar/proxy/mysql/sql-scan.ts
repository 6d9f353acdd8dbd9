/** One statement of a message, as the server's lexer delimits it. */
export interface ScannedStatement {
  /**
   * Its text without the `;` that ends it, each comment (`#`, `-- `, `/* *\/`) replaced by a
   * space: what the server reads of it, so the grammar never has to decide what a comment is.
   */
  readonly text: string;
}

/** A message's statements, or why the server would read it otherwise than the grammar. */
export type Scan =
  | { readonly ok: true; readonly statements: readonly ScannedStatement[] }
  | { readonly ok: false; readonly misread: string };

/** `--` starts a comment only before whitespace or a control character (MySQL's sql_lex.cc). */
function dashComment(next: string | undefined): boolean {
  return next === undefined || next.charCodeAt(0) <= 0x20 || next.charCodeAt(0) === 0x7f;
}

/** The index after a quoted run that began at `i` with `quote`; -1 when it is not closed. */
function skipQuoted(sql: string, i: number, quote: string): number {
  const backslash = quote !== "`";
  let j = i + 1;
  while (j < sql.length) {
    const c = sql[j];
    if (backslash && c === "\\") {
      j += 2;
      continue;
    }
    if (c === quote) {
      if (sql[j + 1] === quote) {
        j += 2;
        continue;
      }
      return j + 1;
    }
    j++;
  }
  return -1;
}

/**
 * Splits a message's SQL into statements as the MySQL and MariaDB servers' lexer does in the
 * default sql_mode (backslash escapes in strings, `"` a string): `'…'`, `"…"` and `` `…` `` runs,
 * `#` and `-- ` comments to the end of the line, `/* *\/` comments, `;` between statements. Text
 * the server reads as code where a grammar could read a comment is refused: executable comments
 * (`/*!…*\/`, MariaDB's `/*M!…*\/`), `--` not followed by a space (`1 --1` is `1 - -1`), and a NUL.
 */
export function scanMysql(sql: string): Scan {
  const statements: ScannedStatement[] = [];
  /** The current statement's text before `from`, comments replaced. */
  let parts: string[] = [];
  let from = 0;
  let content = false;
  let i = 0;
  const skip = (to: number) => {
    parts.push(sql.slice(from, i), " ");
    from = to;
    i = to;
  };
  const end = (at: number) => {
    parts.push(sql.slice(from, at));
    if (content) statements.push({ text: parts.join("") });
    parts = [];
    from = at + 1;
    content = false;
  };
  while (i < sql.length) {
    const c = sql[i] as string;
    if (c === "\0") return { ok: false, misread: "a NUL character" };
    if (c === "'" || c === '"' || c === "`") {
      const next = skipQuoted(sql, i, c);
      if (next < 0) return { ok: false, misread: "an unterminated quoted string or name" };
      content = true;
      i = next;
      continue;
    }
    if (c === "#" || (c === "-" && sql[i + 1] === "-")) {
      if (c === "-" && !dashComment(sql[i + 2])) {
        return {
          ok: false,
          misread: "`--` not followed by a space: the server reads two minus signs",
        };
      }
      const nl = sql.indexOf("\n", i);
      skip(nl < 0 ? sql.length : nl + 1);
      continue;
    }
    if (c === "/" && sql[i + 1] === "*") {
      const mark = sql.slice(i + 2, i + 4);
      if (mark[0] === "!" || mark.toUpperCase() === "M!") {
        return { ok: false, misread: "an executable comment: /*! ... */ runs as code on the server" };
      }
      const close = sql.indexOf("*/", i + 2);
      if (close < 0) return { ok: false, misread: "an unterminated comment" };
      skip(close + 2);
      continue;
    }
    if (c === ";") {
      end(i);
      i++;
      continue;
    }
    if (c.charCodeAt(0) > 0x20) content = true;
    i++;
  }
  end(sql.length);
  return { ok: true, statements };
}

/** A MySQL string literal's value (`'it''s'`, `'a\\nb'`), as the server reads it by default. */
export function unquoteMysql(literal: string): string | undefined {
  const q = literal[0];
  if ((q !== "'" && q !== '"') || literal.at(-1) !== q || skipQuoted(literal, 0, q) !== literal.length) {
    return undefined;
  }
  const ESC: Readonly<Record<string, string>> = {
    "0": "\0",
    b: "\b",
    n: "\n",
    r: "\r",
    t: "\t",
    Z: "\x1a",
  };
  let out = "";
  for (let i = 1; i < literal.length - 1; i++) {
    const c = literal[i] as string;
    if (c === "\\") {
      const n = literal[++i] as string;
      // `\%` and `\_` keep their backslash (for LIKE).
      out += n === "%" || n === "_" ? `\\${n}` : (ESC[n] ?? n);
    } else if (c === q) {
      out += q;
      i++;
    } else {
      out += c;
    }
  }
  return out;
}
