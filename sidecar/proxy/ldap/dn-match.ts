/**
 * A deliberately loose reading of DNs (RFC 4514 strings), for one question only: does a request
 * name the leased account's own entry, or an entry above it? Only each RDN's attribute values
 * are kept (types are ignored, so no alias or OID spelling of a type slips past), unescaped, then
 * folded hard: Unicode NFKC, upper- then lower-cased, all white space removed. Folding more than
 * the server's matching rules do can only make more DNs look alike, which refuses more: the safe
 * side. A DN this reading cannot follow (quoted or `#`-hex values, a bad escape, bytes that are
 * not UTF-8) counts as naming the account.
 */

/** Each RDN's folded values, last RDN (the top of the tree) last; null when not readable. */
export type RdnValues = readonly (readonly string[])[];

const COMMA = 0x2c;
const PLUS = 0x2b;
const SEMI = 0x3b;
const BACKSLASH = 0x5c;
const QUOTE = 0x22;
const HASH = 0x23;
const SPACE = 0x20;
const EQUALS = 0x3d;

const hexDigit = (c: number | undefined): number => {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
};

function fold(bytes: number[]): string | null {
  const raw = Buffer.from(bytes);
  const text = raw.toString("utf8");
  if (!Buffer.from(text, "utf8").equals(raw)) return null;
  return text.normalize("NFKC").toUpperCase().toLowerCase().replace(/\s+/gu, "");
}

/** The folded values of each RDN of `dn`, or null when this reading cannot follow it. */
export function rdnValues(dn: string | Buffer): RdnValues | null {
  const s = typeof dn === "string" ? Buffer.from(dn, "utf8") : dn;
  const n = s.length;
  let i = 0;
  while (i < n && s[i] === SPACE) i++;
  if (i === n) return [];
  const rdns: string[][] = [];
  let rdn: string[] = [];
  for (;;) {
    const eq = s.indexOf(EQUALS, i);
    if (eq < 0) return null;
    for (let k = i; k < eq; k++) {
      const c = s[k];
      if (c === COMMA || c === PLUS || c === SEMI || c === BACKSLASH || c === QUOTE) return null;
    }
    i = eq + 1;
    while (i < n && s[i] === SPACE) i++;
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
    rdn.push(value);
    if (i >= n) break;
    const sep = s[i];
    i++;
    if (sep === PLUS) continue;
    rdns.push(rdn);
    rdn = [];
    while (i < n && s[i] === SPACE) i++;
    if (i >= n) return null;
  }
  rdns.push(rdn);
  return rdns;
}

function sameValues(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const x = [...a].sort();
  const y = [...b].sort();
  return x.every((v, k) => v === y[k]);
}

/**
 * True when `dn` may name the account's entry (`account`, from {@link rdnValues}) or an entry
 * above it, or cannot be read; always true when the account's own DN could not be read.
 */
export function namesAccountOrAbove(dn: string | Buffer, account: RdnValues | null): boolean {
  if (account === null) return true;
  const entry = rdnValues(dn);
  if (entry === null) return true;
  if (entry.length > account.length) return false;
  for (let k = 1; k <= entry.length; k++) {
    if (!sameValues(entry[entry.length - k] ?? [], account[account.length - k] ?? [])) return false;
  }
  return true;
}
