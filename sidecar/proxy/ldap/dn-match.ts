/**
 * A deliberately loose reading of DNs (RFC 4514 strings), for one question only: does a request
 * name the leased account's own entry, or an entry above it? Only each RDN's attribute values
 * are compared (the request's types are ignored, so no alias or OID spelling of a type slips
 * past), unescaped, then folded hard: Unicode NFKC, upper- then lower-cased, decomposed again,
 * every combining mark, format character and white space removed. Folding more than the
 * server's matching rules do can only make more DNs look alike, which refuses more: the safe
 * side. The fold covers case-ignoring string matching (caseIgnoreMatch, caseIgnoreIA5Match,
 * and the exact ones); a value of the account's DN whose type is not one known to use them
 * (say `telephoneNumber`, whose matching ignores `-`, or a DN-valued one) matches any value.
 * A DN this reading cannot follow (quoted or `#`-hex values, a `;` option in a type, a bad
 * escape, bytes that are not UTF-8) counts as naming the account.
 */

/**
 * Each RDN's folded values, last RDN (the top of the tree) last; from the account's DN, null
 * stands for any value (a type whose matching the fold may not cover).
 */
export type RdnValues = readonly (readonly (string | null)[])[];

interface Ava {
  /** Lower-cased, surrounding white space removed. */
  readonly type: string;
  readonly value: string;
}

/**
 * Attribute types of the standard schema (RFC 4519, 4524, 2798) that match with
 * caseIgnoreMatch or caseIgnoreIA5Match, by name and by OID: the fold covers them.
 */
const FOLDED_TYPES: ReadonlySet<string> = new Set([
  ...["uid", "userid", "0.9.2342.19200300.100.1.1", "cn", "commonname", "2.5.4.3"],
  ...["ou", "organizationalunitname", "2.5.4.11", "o", "organizationname", "2.5.4.10"],
  ...["dc", "domaincomponent", "0.9.2342.19200300.100.1.25", "c", "countryname", "2.5.4.6"],
  ...["l", "localityname", "2.5.4.7", "st", "stateorprovincename", "2.5.4.8"],
  ...["sn", "surname", "2.5.4.4", "givenname", "gn", "2.5.4.42", "name", "2.5.4.41"],
  ...["mail", "rfc822mailbox", "0.9.2342.19200300.100.1.3", "employeenumber", "2.16.840.1.113730.3.1.3"],
]);

const COMMA = 0x2c;
const PLUS = 0x2b;
const SEMI = 0x3b;
const BACKSLASH = 0x5c;
const QUOTE = 0x22;
const HASH = 0x23;
const EQUALS = 0x3d;
/** Where slapd skips white space around types, '=' and separators: space, tab, LF, CR. */
const isSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

const hexDigit = (c: number | undefined): number => {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
};

/**
 * Folds harder than any case-ignoring matching rule: e.g. slapd folds `İ` (U+0130) to `i`
 * where JavaScript lower-cases it to `i` + U+0307, so marks are dropped after the case steps.
 */
function fold(bytes: number[]): string | null {
  const raw = Buffer.from(bytes);
  const text = raw.toString("utf8");
  if (!Buffer.from(text, "utf8").equals(raw)) return null;
  return text
    .normalize("NFKC")
    .toUpperCase()
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[\p{M}\p{Cf}\p{Z}\s]+/gu, "");
}

/** Each RDN's AVAs, values unescaped and folded; null when this reading cannot follow `dn`. */
function readDn(dn: string | Buffer): Ava[][] | null {
  const s = typeof dn === "string" ? Buffer.from(dn, "utf8") : dn;
  const n = s.length;
  let i = 0;
  while (i < n && isSpace(s[i])) i++;
  if (i === n) return [];
  const rdns: Ava[][] = [];
  let rdn: Ava[] = [];
  for (;;) {
    const eq = s.indexOf(EQUALS, i);
    if (eq < 0) return null;
    for (let k = i; k < eq; k++) {
      const c = s[k];
      if (c === COMMA || c === PLUS || c === SEMI || c === BACKSLASH || c === QUOTE) return null;
    }
    const type = s.subarray(i, eq).toString("latin1").trim().toLowerCase();
    i = eq + 1;
    while (i < n && isSpace(s[i])) i++;
    if (s[i] === QUOTE || s[i] === HASH) return null;
    const bytes: number[] = [];
    while (i < n) {
      const c = s[i] as number;
      if (c === COMMA || c === SEMI || c === PLUS) break;
      if (c === QUOTE) return null;
      if (c === BACKSLASH) {
        const hi = hexDigit(s[i + 1]);
        const lo = hexDigit(s[i + 2]);
        if (hi >= 0 && lo >= 0) {
          bytes.push(hi * 16 + lo);
          i += 3;
        } else if (i + 1 < n) {
          bytes.push(s[i + 1] as number);
          i += 2;
        } else return null;
        continue;
      }
      bytes.push(c);
      i++;
    }
    const value = fold(bytes);
    if (value === null) return null;
    rdn.push({ type, value });
    if (i >= n) break;
    const sep = s[i];
    i++;
    if (sep === PLUS) continue;
    rdns.push(rdn);
    rdn = [];
    while (i < n && isSpace(s[i])) i++;
    if (i >= n) return null;
  }
  rdns.push(rdn);
  return rdns;
}

/**
 * The account's DN as {@link namesAccountOrAbove} compares it: each RDN's folded values, null
 * for a value whose type the fold may not cover; null when this reading cannot follow `dn`.
 */
export function rdnValues(dn: string | Buffer): RdnValues | null {
  const rdns = readDn(dn);
  return rdns === null
    ? null
    : rdns.map((rdn) => rdn.map((ava) => (FOLDED_TYPES.has(ava.type) ? ava.value : null)));
}

/** The same number of values, and each of the account's (but its any-values) among the request's. */
function sameValues(account: readonly (string | null)[], request: readonly Ava[]): boolean {
  if (account.length !== request.length) return false;
  const left = request.map((ava) => ava.value);
  for (const v of account) {
    if (v === null) continue;
    const at = left.indexOf(v);
    if (at < 0) return false;
    left.splice(at, 1);
  }
  return true;
}

/**
 * True when `dn` may name the account's entry (`account`, from {@link rdnValues}) or an entry
 * above it, or cannot be read; always true when the account's own DN could not be read.
 */
export function namesAccountOrAbove(dn: string | Buffer, account: RdnValues | null): boolean {
  if (account === null) return true;
  const entry = readDn(dn);
  if (entry === null) return true;
  if (entry.length > account.length) return false;
  for (let k = 1; k <= entry.length; k++) {
    if (!sameValues(account[account.length - k] ?? [], entry[entry.length - k] ?? [])) return false;
  }
  return true;
}
