/** The words of a statement as MySQL reads identifiers and keywords, lower-cased: quotes and comments do not hide one. */
function words(text: string): string[] {
  return text.toLowerCase().split(/[^a-z0-9_$\u0080-\uffff]+/u);
}

/**
 * True for a statement that may set an account's password: any with the word IDENTIFIED
 * (`ALTER|CREATE USER … IDENTIFIED BY|WITH|VIA`, `GRANT … IDENTIFIED BY`), or with SET and
 * then PASSWORD (`SET PASSWORD [FOR …] = …`, `SET STATEMENT … FOR SET PASSWORD`). Words are
 * found in the raw text, inside comments and literals too, so that no quoting or executable
 * comment (`/*! … *\/`) hides one; a statement that only names them (a `password` column set
 * by UPDATE) is refused as well: the filter errs on the side of refusing. SQL assembled at run
 * time (PREPARE … FROM @v, EXECUTE IMMEDIATE) is not seen.
 */
export function setsAccountPassword(text: string): boolean {
  const w = words(text);
  if (w.includes("identified")) return true;
  const set = w.indexOf("set");
  return set >= 0 && w.indexOf("password", set + 1) > set;
}
