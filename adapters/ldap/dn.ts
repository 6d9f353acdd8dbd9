/** One attribute-type/value pair of a relative distinguished name, value unescaped. */
export interface AttributeTypeAndValue {
  readonly type: string;
  readonly value: string;
}

/** A DN as its RDNs, leftmost (most specific) first; each RDN holds one or more pairs (`+`). */
export type ParsedDn = ReadonlyArray<ReadonlyArray<AttributeTypeAndValue>>;

/** The placeholder an `accountDn` template holds exactly once. */
export const ACCOUNT_PLACEHOLDER = "{account}";

/** Characters RFC 4514 section 2.4 escapes anywhere in a value, plus `=` (allowed, and safer for lax parsers). */
const ALWAYS_ESCAPED = new Set(['"', "+", ",", ";", "<", ">", "\\", "="]);

function isControl(ch: string): boolean {
  const code = ch.charCodeAt(0);
  return code < 0x20 || code === 0x7f;
}

function hexEscape(ch: string): string {
  return [...Buffer.from(ch, "utf8")].map((b) => `\\${b.toString(16).padStart(2, "0")}`).join("");
}

/**
 * Escapes a string as an RFC 4514 attribute value: the specials are backslash-escaped, a
 * leading space or `#` and a trailing space are escaped, and control characters (NUL
 * included) become `\XX` hex pairs. Other characters, unicode included, stay as they are
 * (RFC 4514 sends UTF-8). The result is valid wherever it is placed inside a value.
 */
export function escapeDnValue(value: string): string {
  const chars = [...value];
  return chars
    .map((ch, i) => {
      if (ALWAYS_ESCAPED.has(ch)) return `\\${ch}`;
      if (isControl(ch)) return hexEscape(ch);
      if (i === 0 && (ch === " " || ch === "#")) return `\\${ch}`;
      if (i === chars.length - 1 && ch === " ") return "\\ ";
      return ch;
    })
    .join("");
}

const HEX_PAIR = /^[0-9A-Fa-f]{2}$/;
const ATTRIBUTE_TYPE = /^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$/;

/** Reads one attribute value from `dn` at `start`, up to an unescaped `,` or `+`. */
function readValue(dn: string, start: number): { value: string; end: number } {
  if (dn[start] === "#") {
    // A BER-encoded value (hexstring); kept as written, it is compared as text only here.
    let end = start + 1;
    while (end < dn.length && /[0-9A-Fa-f]/.test(dn[end] ?? "")) end++;
    if ((end - start - 1) % 2 !== 0 || end === start + 1) throw new Error("malformed #hexstring value");
    return { value: dn.slice(start, end), end };
  }
  const bytes: number[] = [];
  let i = start;
  while (i < dn.length) {
    const ch = dn[i] ?? "";
    if (ch === "," || ch === "+") break;
    if (ch === "\\") {
      const next = dn.slice(i + 1, i + 3);
      if (HEX_PAIR.test(next)) {
        bytes.push(Number.parseInt(next, 16));
        i += 3;
        continue;
      }
      const escaped = dn[i + 1];
      if (escaped === undefined || !(ALWAYS_ESCAPED.has(escaped) || escaped === " " || escaped === "#")) {
        throw new Error(`bad escape at position ${i}`);
      }
      bytes.push(escaped.charCodeAt(0));
      i += 2;
      continue;
    }
    if (ch === '"' || ch === ";" || ch === "<" || ch === ">" || ch === "\0") {
      throw new Error(`unescaped ${JSON.stringify(ch)} at position ${i}`);
    }
    const cp = dn.codePointAt(i) ?? 0;
    const text = String.fromCodePoint(cp);
    bytes.push(...Buffer.from(text, "utf8"));
    i += text.length;
  }
  const decoded = Buffer.from(bytes);
  const value = decoded.toString("utf8");
  if (!Buffer.from(value, "utf8").equals(decoded)) throw new Error("value is not valid UTF-8");
  return { value, end: i };
}

/**
 * Parses a DN string per RFC 4514 (attribute types as names or OIDs, escaped and hex
 * values, multi-valued RDNs). Spaces around `,`, `+` and `=` are not allowed, as in the
 * RFC's grammar. Throws an Error naming the problem (never echoing the DN).
 */
export function parseDn(dn: string): ParsedDn {
  if (dn.length === 0) return [];
  const rdns: AttributeTypeAndValue[][] = [];
  let rdn: AttributeTypeAndValue[] = [];
  let i = 0;
  for (;;) {
    const eq = dn.indexOf("=", i);
    if (eq < 0) throw new Error(`attribute ${rdns.length + 1} has no "="`);
    const type = dn.slice(i, eq);
    if (!ATTRIBUTE_TYPE.test(type)) throw new Error(`invalid attribute type at position ${i}`);
    const { value, end } = readValue(dn, eq + 1);
    rdn.push({ type, value });
    if (end >= dn.length) break;
    if (dn[end] === ",") {
      rdns.push(rdn);
      rdn = [];
    }
    i = end + 1;
    if (i >= dn.length) throw new Error("DN ends with a separator");
  }
  rdns.push(rdn);
  return rdns;
}

/** A private-use character standing in for the account while checking structure: never escaped, never in real DNs. */
const MARK = "\u{E000}";

/** Why `template` is not a usable accountDn template, or null. */
export function checkAccountDnTemplate(template: string): string | null {
  const first = template.indexOf(ACCOUNT_PLACEHOLDER);
  if (first < 0) return `must contain ${ACCOUNT_PLACEHOLDER}`;
  if (template.indexOf(ACCOUNT_PLACEHOLDER, first + 1) >= 0) {
    return `must contain ${ACCOUNT_PLACEHOLDER} exactly once`;
  }
  if (template.includes(MARK)) return "must not contain U+E000";
  let parsed: ParsedDn;
  try {
    parsed = parseDn(template.replace(ACCOUNT_PLACEHOLDER, MARK));
  } catch (err) {
    return `is not a valid DN: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (parsed.length < 2) return "must have at least two RDNs (the account's entry and its parent)";
  // A placeholder in an attribute type would have failed to parse; one in a #hexstring stays literal.
  if (!parsed.flat().some((atv) => atv.value.includes(MARK))) {
    return `${ACCOUNT_PLACEHOLDER} must be inside an attribute value (not a #hex value)`;
  }
  return null;
}

/**
 * The DN of `account` under `template`: the account is escaped as a DN value (RFC 4514)
 * and put in place of `{account}`. As a guard against any escaping mistake, the result is
 * parsed back and must equal the template's DN with exactly the account in its place.
 * @throws Error if the template is unusable or the check fails.
 */
export function accountDn(template: string, account: string): string {
  const problem = checkAccountDnTemplate(template);
  if (problem !== null) throw new Error(`accountDn ${problem}`);
  const dn = template.replace(ACCOUNT_PLACEHOLDER, () => escapeDnValue(account));
  const expected = parseDn(template.replace(ACCOUNT_PLACEHOLDER, MARK)).map((rdn) =>
    rdn.map((atv) => ({ type: atv.type, value: atv.value.replace(MARK, () => account) })),
  );
  if (JSON.stringify(parseDn(dn)) !== JSON.stringify(expected)) {
    throw new Error("the escaped account does not read back as itself");
  }
  return dn;
}

/** A value as the usual naming attributes compare it (caseIgnoreMatch): trimmed, inner spaces collapsed, lowercase. */
function comparableValue(value: string): string {
  if (value.startsWith("#")) return value.toLowerCase();
  return value.trim().replace(/\s+/g, " ").toLowerCase();
}

/**
 * A DN in one canonical text form, for telling whether two DNs name the same entry: attribute
 * types lowercased, values compared as `uid`, `cn`, `ou` and `dc` compare them (case and
 * surplus spaces ignored) and escaped the one way {@link escapeDnValue} does, the pairs of a
 * multi-valued RDN sorted. Two DNs the directory takes as one entry through other matching
 * rules (a case-sensitive naming attribute) may still differ; the reverse (two entries, one
 * form) only happens for case-sensitive attributes. Throws an Error for a DN that does not parse.
 */
export function canonicalDn(dn: string): string {
  return parseDn(dn)
    .map((rdn) =>
      rdn
        .map((atv) => `${atv.type.toLowerCase()}=${escapeDnValue(comparableValue(atv.value))}`)
        .sort()
        .join("+"),
    )
    .join(",");
}
