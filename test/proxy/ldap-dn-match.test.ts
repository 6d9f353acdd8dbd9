import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { namesAccountOrAbove, rdnValues } from "../../sidecar/proxy/ldap/dn-match.js";

const ACCOUNT = "uid=px_l1,ou=People,dc=example,dc=org";
const account = rdnValues(ACCOUNT);

describe("LDAP DNs: does a request name the account's entry or one above it?", () => {
  it("reads RDN values, unescaped and folded, top of the tree last", () => {
    expect(rdnValues(ACCOUNT)).toEqual([["px_l1"], ["people"], ["example"], ["org"]]);
    expect(rdnValues("cn=a\\,b+sn=\\43d ,o=x")).toEqual([["a,b", "cd"], ["x"]]);
    expect(rdnValues("")).toEqual([]);
  });

  it("the account's own entry under other spellings: case, spaces, escapes, type aliases and OIDs, ';'", () => {
    for (const dn of [
      ACCOUNT,
      "UID=PX_L1,OU=PEOPLE,DC=EXAMPLE,DC=ORG",
      "uid = px_l1 , ou=People, dc=example, dc=org",
      "userid=px_l1,ou=People,dc=example,dc=org",
      "0.9.2342.19200300.100.1.1=px_l1,ou=People,dc=example,dc=org",
      "uid=\\70\\78_l1,ou=People,dc=example,dc=org",
      "uid=px\\_l1;ou=People;dc=example;dc=org",
      "uid=ｐｘ_l1,ou=People,dc=example,dc=org",
    ])
      expect(namesAccountOrAbove(dn, account), dn).toBe(true);
  });

  it("entries above the account count; entries beside or below it do not", () => {
    for (const dn of ["ou=People,dc=example,dc=org", "dc=example,dc=org", "dc=org", ""])
      expect(namesAccountOrAbove(dn, account), dn).toBe(true);
    for (const dn of [
      "uid=px_l2,ou=People,dc=example,dc=org",
      "cn=child,uid=px_l1,ou=People,dc=example,dc=org",
      "ou=Groups,dc=example,dc=org",
      "uid=px_l1,ou=People,dc=example,dc=net",
    ])
      expect(namesAccountOrAbove(dn, account), dn).toBe(false);
  });

  it("what it cannot read counts as the account: quoted and #-hex values, bad escapes, broken UTF-8, no '='", () => {
    for (const dn of [
      'uid="px_l1",ou=People,dc=example,dc=org',
      "uid=#04057078",
      "uid=px_l1\\",
      Buffer.from([0x75, 0x69, 0x64, 0x3d, 0xff, 0xfe]),
      "px_l1",
      "uid=px_l1,",
    ])
      expect(namesAccountOrAbove(dn, account), String(dn)).toBe(true);
    // An account DN that cannot be read makes every rename and delete count.
    expect(namesAccountOrAbove("uid=other,dc=x", null)).toBe(true);
  });

  it("slapd's own folds: İ (U+0130) is i to caseIgnoreMatch, so uid=alİce names uid=alice (was a bypass)", () => {
    const alice = rdnValues("uid=alice,ou=people,dc=example,dc=org");
    for (const dn of [
      "uid=alİce,ou=people,dc=example,dc=org",
      "uid=ALİCE,ou=people,dc=example,dc=org",
      "uid=al\\c4\\b0ce,ou=people,dc=example,dc=org",
      "uid=ＡＬİＣＥ,ou=people,dc=example,dc=org",
      "uid=alice,ou=people,dc=example,dc=org",
    ])
      expect(namesAccountOrAbove(dn, alice), dn).toBe(true);
    // An account value holding İ is named by its slapd spellings too.
    expect(namesAccountOrAbove("uid=i,dc=org", rdnValues("uid=İ,dc=org"))).toBe(true);
    expect(namesAccountOrAbove("uid=I,dc=org", rdnValues("uid=İ,dc=org"))).toBe(true);
  });

  it("a value of a type whose matching the fold may not cover (telephoneNumber, DN-valued) matches any value", () => {
    // telephoneNumberMatch ignores '-': slapd names this entry telephoneNumber=5550100.
    const phone = rdnValues("telephoneNumber=555-0100,ou=people,dc=example,dc=org");
    expect(phone).toEqual([[null], ["people"], ["example"], ["org"]]);
    for (const dn of [
      "telephoneNumber=5550100,ou=people,dc=example,dc=org",
      "telephoneNumber=555 01-00,ou=people,dc=example,dc=org",
      "cn=anyone,ou=people,dc=example,dc=org",
    ])
      expect(namesAccountOrAbove(dn, phone), dn).toBe(true);
    // distinguishedNameMatch reads the inner DN: seeAlso=cn\=a\,dc\=org is seeAlso=commonName\=A\,dc\=org.
    const seeAlso = rdnValues("seeAlso=commonName\\=A\\,dc\\=org,dc=org");
    expect(namesAccountOrAbove("seeAlso=cn\\=a\\,dc\\=org,dc=org", seeAlso)).toBe(true);
    // The known part still decides: another parent is another entry.
    expect(namesAccountOrAbove("telephoneNumber=5550100,ou=groups,dc=example,dc=org", phone)).toBe(false);
    // Type names count by name or OID, any case; a multi-valued RDN needs each known value.
    expect(rdnValues("CommonName=a+2.5.4.4=b+uidNumber=7,O=x")).toEqual([["a", "b", null], ["x"]]);
    const multi = rdnValues("cn=a+uidNumber=7,o=x");
    expect(namesAccountOrAbove("uidNumber=007+cn=A,o=x", multi)).toBe(true);
    expect(namesAccountOrAbove("cn=b+uidNumber=7,o=x", multi)).toBe(false);
    expect(namesAccountOrAbove("cn=a,o=x", multi)).toBe(false);
  });

  it("slapd skips tabs, CR and LF where it skips spaces: a '#' value after them cannot be read", () => {
    for (const dn of [
      "uid=\t#0405707831,ou=People,dc=example,dc=org",
      'uid=\r\n"px_l1",ou=People,dc=example,dc=org',
    ])
      expect(namesAccountOrAbove(dn, account), dn).toBe(true);
    expect(namesAccountOrAbove("uid=\tpx_l1,\tou=People,dc=example,dc=org", account)).toBe(true);
    // A type with an option (slapd drops it: uid;lang-en is uid) cannot be read.
    expect(namesAccountOrAbove("uid;lang-en=nobody,ou=People,dc=example,dc=org", account)).toBe(true);
  });

  it("i, I and İ in any mix and case name the same account (fast-check)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom("i", "I", "İ", "l", "L", "ı"), { minLength: 1, maxLength: 8 }),
        (chars) => {
          // slapd folds i, I and İ to i; ı (dotless) stays ı, so it is left out of the account.
          const value = chars.join("");
          const folded = chars.map((c) => (c === "ı" ? c : c.toLowerCase().charAt(0))).join("");
          expect(namesAccountOrAbove(`uid=${value},dc=org`, rdnValues(`uid=${folded},dc=org`))).toBe(true);
        },
      ),
    );
  });

  it("a DN escaped any way, character by character, still names the account (fast-check)", () => {
    const chars = [..."uid=px_l1,ou=People,dc=example,dc=org"];
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: chars.length, maxLength: chars.length }), (esc) => {
        // Escape value characters (never '=' or separators) as \XX hex.
        let inValue = false;
        const dn = chars
          .map((c, k) => {
            if (c === "=") {
              inValue = true;
              return c;
            }
            if (c === ",") {
              inValue = false;
              return c;
            }
            return inValue && esc[k] ? `\\${c.charCodeAt(0).toString(16).padStart(2, "0")}` : c;
          })
          .join("");
        expect(namesAccountOrAbove(dn, account)).toBe(true);
      }),
    );
  });
});
