import { randomBytes } from "node:crypto";

/** What kind of literal a masked one is: a `'…'` or `"…"` string, or a run of digits. */
export type LiteralKind = "'" | '"' | "n";

/** A statement with its plain literals masked: `key` tells apart any two that differ elsewhere. */
export interface StatementShape {
  /** The text with each masked literal replaced by NUL and its kind (the server refuses NUL). */
  readonly key: string;
  /** The text between the masked literals, and each one's kind: `text = parts[0] l0 parts[1] l1 …`. */
  readonly parts: readonly string[];
  readonly kinds: readonly LiteralKind[];
}

/** Where a literal may begin and end to be masked: after and before these only. */
const BEFORE = new Set([" ", "\t", "\n", "\r", "(", ",", "=", "<", ">"]);
const AFTER = new Set([" ", "\t", "\n", "\r", ")", ","]);
const SIGN_OR_OPERATOR = new Set(["+", "-", "*", "/", "%"]);
/** Digit runs up to 15: every one is a JavaScript integer, read the same way by the grammar. */
const MAX_DIGITS = 15;

/** A string literal's content [from, to) that every reading takes as it is: no escape, quote or control character. */
function plainContent(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x5c || c === 0x27 || c === 0x22 || c === 0x60) return false;
  }
  return true;
}

const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";

/** The index after the quoted run at `i` (backslash escapes in `'` and `"` strings); -1 if unclosed. */
function quotedEnd(text: string, i: number, quote: string, escapes: boolean): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text[j];
    if (escapes && c === "\\") j++;
    else if (c === quote) {
      if (text[j + 1] !== quote) return j + 1;
      j++;
    }
  }
  return -1;
}

/** A digit run at [i, j) stands alone as a number (not `1e5`, `1.5`, `t1`, `0x1f`, `@1`, `1e-5`). */
function plainNumber(text: string, i: number, j: number): boolean {
  if (j - i > MAX_DIGITS) return false;
  const before = text[i - 1];
  const after = text[j];
  const afterOk =
    after === undefined || AFTER.has(after) || SIGN_OR_OPERATOR.has(after) || "=<>".includes(after);
  if (!afterOk) return false;
  if (before !== undefined && BEFORE.has(before)) return true;
  // `-5`, `a*5`: the operator must itself follow a space, a bracket or an operator (`1e-5` is one literal).
  const beforeSign = text[i - 2];
  return (
    before !== undefined && SIGN_OR_OPERATOR.has(before) && beforeSign !== undefined && BEFORE.has(beforeSign)
  );
}

/**
 * The shape of one statement the server's lexer delimited (sql-scan.ts: comments already
 * replaced, no `;` outside a quoted run), by the MySQL/MariaDB lexer's rules for the session's
 * sql_mode: `'…'` strings, and `"…"` ones unless ANSI_QUOTES makes them names, whose content has
 * no backslash, quote or control character, standing alone (not after an introducer `_utf8'…'`,
 * `x'…'`, `b'…'`, `N'…'`, `@`, `.`), and runs of at most 15 digits standing alone (not part of
 * `1e5`, `1.5`, `0x1f`, a name or `1e-5`) are masked; everything else stays in the key as it is.
 * Undefined (no shape: read it whole) for anything the lexer here is not sure of: a comment
 * start, `;`, NUL or an unclosed quote (sql-scan.ts should have removed or refused them), and a
 * backslash under NO_BACKSLASH_ESCAPES or ANSI_QUOTES.
 */
export function statementShape(text: string, sqlMode: string): StatementShape | undefined {
  return shapeReader(sqlMode)(text);
}

/**
 * `statementShape` for one session's sql_mode, read once: a listener session takes the shape of
 * every statement, and its sql_mode stays as the session began.
 */
export function shapeReader(sqlMode: string): (text: string) => StatementShape | undefined {
  const ansiQuotes = /\bANSI_QUOTES\b/i.test(sqlMode);
  const refusesBackslash = /NO_BACKSLASH_ESCAPES|ANSI_QUOTES/i.test(sqlMode);
  return (text) => (refusesBackslash && text.includes("\\") ? undefined : shapeOf(text, ansiQuotes));
}

function shapeOf(text: string, ansiQuotes: boolean): StatementShape | undefined {
  const parts: string[] = [];
  const kinds: LiteralKind[] = [];
  let key = "";
  let from = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === "\0" || c === ";" || c === "#") return undefined;
    if ((c === "-" && text[i + 1] === "-") || (c === "/" && text[i + 1] === "*")) return undefined;
    let kind: LiteralKind | undefined;
    let end: number;
    if (c === "'" || c === '"' || c === "`") {
      end = quotedEnd(text, i, c, c !== "`" && !(c === '"' && ansiQuotes));
      if (end < 0) return undefined;
      const string = c === "'" || (c === '"' && !ansiQuotes);
      const before = text[i - 1];
      const after = text[end];
      if (
        string &&
        before !== undefined &&
        BEFORE.has(before) &&
        (after === undefined || AFTER.has(after)) &&
        plainContent(text, i + 1, end - 1)
      ) {
        kind = c as LiteralKind;
      }
    } else if (isDigit(c)) {
      end = i + 1;
      while (isDigit(text[end])) end++;
      if (plainNumber(text, i, end)) kind = "n";
    } else {
      i++;
      continue;
    }
    if (kind !== undefined) {
      // Masked: the text before it is a part, the literal only its kind.
      const part = text.slice(from, i);
      parts.push(part);
      kinds.push(kind);
      key += `${part}\0${kind}`;
      from = end;
    }
    i = end;
  }
  const last = text.slice(from);
  parts.push(last);
  return { key: key + last, parts, kinds };
}

/** This process's secret for the probe's literals: no text an agent writes can hold them. */
const NONCE = randomBytes(12).toString("hex");
const NUMBER_BASE = 1e14 + (randomBytes(4).readUInt32BE(0) % 4e14);

/** The probe's literal `k`: unique, of the kind masked, and never in an agent's text. */
export function probeLiteral(kind: LiteralKind, k: number): string {
  if (kind === "n") return String(NUMBER_BASE + k * 7919);
  return `${kind}lhprobe${NONCE}x${k}${kind}`;
}

/** The shape with each masked literal replaced by its probe literal. */
export function probeText(shape: StatementShape): string {
  let out = shape.parts[0] ?? "";
  for (let k = 0; k < shape.kinds.length; k++)
    out += probeLiteral(shape.kinds[k] as LiteralKind, k) + shape.parts[k + 1];
  return out;
}

const VALUE_TYPES: Readonly<Record<string, LiteralKind>> = {
  single_quote_string: "'",
  double_quote_string: '"',
  number: "n",
};

/**
 * Whether the grammar read each probe literal of `shape` as a plain value of its kind, exactly
 * once, and nowhere else (no name, alias, keyword or table list holds one), in what it made of
 * `probeText(shape)`: then no masked literal was read as a name or merged with another, and its
 * content cannot change what the statement is.
 */
export function probeLiteralsRead(
  ast: unknown,
  tableList: readonly string[],
  shape: StatementShape,
): boolean {
  const want = new Map<string, { kind: LiteralKind; seen: number }>();
  shape.kinds.forEach((kind, k) => {
    const lit = probeLiteral(kind, k);
    want.set(kind === "n" ? lit : lit.slice(1, -1), { kind, seen: 0 });
  });
  const elsewhere = (v: unknown) =>
    (typeof v === "string" && (v.includes(NONCE) || want.has(v))) ||
    (typeof v === "number" && want.has(String(v)));
  if (tableList.some(elsewhere)) return false;
  const seen = new Set<object>();
  let stray = false;
  const walk = (value: unknown): void => {
    if (typeof value !== "object" || value === null || seen.has(value)) return;
    seen.add(value);
    if (Array.isArray(value)) {
      for (const v of value)
        if (elsewhere(v)) stray = true;
        else walk(v);
      return;
    }
    const node = value as Record<string, unknown>;
    const kind = typeof node.type === "string" ? VALUE_TYPES[node.type] : undefined;
    for (const k in node) {
      const v = node[k];
      if (k === "value" && kind !== undefined && (typeof v === "string" || typeof v === "number")) {
        const w = want.get(String(v));
        if (w && w.kind === kind) {
          w.seen++;
          continue;
        }
      }
      if (elsewhere(v)) stray = true;
      else walk(v);
    }
  };
  walk(ast);
  if (stray) return false;
  for (const w of want.values()) if (w.seen !== 1) return false;
  return true;
}
