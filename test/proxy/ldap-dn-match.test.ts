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
