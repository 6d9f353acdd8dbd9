import { checkPrintableName } from "../account-name.js";

/** A cap that keeps the JSON request and the logs bounded. */
const MAX_NAME_CHARS = 1024;

/**
 * Checks that `name` can go to a DBA's command exactly. It travels inside a JSON document
 * on stdin, so quotes and backslashes are harmless; refused are empty names, control
 * characters (NUL included: commands written in C or shell would cut or split on them),
 * unpaired UTF-16 surrogates (no UTF-8 form) and names over 1024 characters. Returns the
 * problem or null. A DBA's command may refuse more; it says so with exit status 64 or 67.
 */
export function checkExecAccountName(name: string): string | null {
  return checkPrintableName(name, MAX_NAME_CHARS);
}
