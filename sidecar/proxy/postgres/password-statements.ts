import { lexSql, rawWords, type SqlToken } from "./sql-lexer.js";

const ROLE_OBJECTS = new Set(["role", "user", "group"]);
const BODY_STATEMENTS = new Set(["function", "procedure"]);

function word(t: SqlToken | undefined): string | undefined {
  return t?.kind === "word" ? t.text : undefined;
}

function statements(tokens: readonly SqlToken[]): SqlToken[][] {
  const out: SqlToken[][] = [[]];
  for (const t of tokens) {
    if (t.kind === "semicolon") out.push([]);
    else out[out.length - 1]?.push(t);
  }
  return out.filter((s) => s.length > 0);
}

/**
 * `ALTER ROLE|USER … PASSWORD` or `CREATE ROLE|USER|GROUP … PASSWORD` anywhere in the statement
 * (not only at its start, so nothing placed before it hides it). `ALTER ROLE x [IN DATABASE d]
 * SET|RESET …` and user mappings are settings, not passwords.
 */
function setsRolePassword(stmt: readonly SqlToken[]): boolean {
  for (let i = 0; i + 1 < stmt.length; i++) {
    const verb = word(stmt[i]);
    const object = word(stmt[i + 1]);
    if ((verb !== "alter" && verb !== "create") || object === undefined || !ROLE_OBJECTS.has(object))
      continue;
    if (object === "user" && word(stmt[i + 2]) === "mapping" && word(stmt[i + 3]) === "for") continue;
    // The role name (any single token, CURRENT_USER included) is never the option keyword.
    let j = i + 3;
    if (verb === "alter") {
      if (word(stmt[j]) === "in" && word(stmt[j + 1]) === "database") j += 3;
      const next = word(stmt[j]);
      if (next === "set" || next === "reset") continue;
    }
    if (stmt.slice(j).some((t) => word(t) === "password")) return true;
  }
  return false;
}

/**
 * Whether text that may run as code (a DO block, a function body, anything whose bytes the proxy
 * may not lex as the server does) so much as mentions a password change: ALTER or CREATE, ROLE,
 * USER or GROUP, and PASSWORD, as words anywhere, strings and comments included.
 */
function mentionsPasswordChange(text: string): boolean {
  const w = rawWords(text);
  return (
    (w.has("alter") || w.has("create")) &&
    (w.has("role") || w.has("user") || w.has("group")) &&
    w.has("password")
  );
}

/** A DO block or CREATE FUNCTION/PROCEDURE whose string constants (its body) mention a password change. */
function bodySetsPassword(stmt: readonly SqlToken[]): boolean {
  const first = word(stmt[0]);
  const hasBody =
    first === "do" || (first === "create" && stmt.some((t) => BODY_STATEMENTS.has(word(t) ?? "")));
  return hasBody && stmt.some((t) => t.kind === "string" && mentionsPasswordChange(t.content));
}

/**
 * Whether a simple Query's or a Parse message's SQL text would change a role's password, or
 * might: the text is lexed both as with `standard_conforming_strings` on and off (a session can
 * switch it), DO blocks and function bodies are judged by the words they contain, and text with
 * non-ASCII bytes (which a multibyte client encoding could make the server read differently) is
 * judged by its words too. False refusals of odd but harmless text are accepted; a statement the
 * server would run as a password change is always caught, unless built at run time from pieces.
 */
export function changesRolePassword(sql: string): boolean {
  // Every rule below needs the word PASSWORD in the text (a keyword is never spelt otherwise):
  // most statements are done with here, without being lexed.
  if (!/password/i.test(sql)) return false;
  for (const backslashInPlainStrings of [false, true]) {
    for (const stmt of statements(lexSql(sql, { backslashInPlainStrings }))) {
      if (setsRolePassword(stmt) || bodySetsPassword(stmt)) return true;
    }
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is the point
  return /[^\x00-\x7f]/.test(sql) && mentionsPasswordChange(sql);
}
