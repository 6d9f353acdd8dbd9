import { randomBytes } from "node:crypto";
import { Client } from "ldapts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { namesAccountOrAbove, rdnValues } from "../../sidecar/proxy/ldap/dn-match.js";
import { startSlapd, type TestSlapd } from "../support/slapd.js";

/**
 * dn-match.ts against the server it guards: each spelling here is one slapd resolves to the
 * account's entry (or one above it), asked by a base search as the rootdn, and each must count
 * as the account's. The spellings that slipped past earlier readings are marked.
 */

let slapd: TestSlapd;
let admin: Client;
const ALICE = "uid=alice,ou=people,dc=example,dc=org";
const PHONE = "telephoneNumber=555-0100,ou=people,dc=example,dc=org";

/** The DN slapd keeps for the entry `dn` names (its own spelling), or null when none is found. */
async function entryNamed(dn: string): Promise<string | null> {
  try {
    const { searchEntries } = await admin.search(dn, { scope: "base", attributes: ["1.1"] });
    return searchEntries[0]?.dn ?? null;
  } catch (err) {
    if ((err as { code?: number }).code === 32) return null;
    throw err;
  }
}

beforeAll(async () => {
  slapd = await startSlapd();
  await slapd.addUser("alice", `pw-${randomBytes(12).toString("base64url")}`);
  await slapd.addUser("bob", `pw-${randomBytes(12).toString("base64url")}`);
  admin = new Client({ url: slapd.url, timeout: 10_000, connectTimeout: 5_000 });
  await admin.bind(slapd.admin.dn, slapd.admin.password);
  await admin.add(PHONE, { objectClass: "person", cn: "phone", sn: "phone", telephoneNumber: "555-0100" });
});

afterAll(async () => {
  await admin?.unbind().catch(() => undefined);
  await slapd?.stop();
});

describe("DN spellings slapd resolves to the account's entry, or to one above it", () => {
  it("each counts as the account's: case, İ, spaces, ';', quotes, escapes, OIDs, options, full width", async () => {
    const account = rdnValues(ALICE);
    const spellings: [string, string][] = [
      // Slipped past the earlier fold (JavaScript lower-cases İ to i + U+0307; slapd to i).
      ["uid=alİce,ou=people,dc=example,dc=org", ALICE],
      ["UID=ALİCE,OU=PEOPLE,DC=EXAMPLE,DC=ORG", ALICE],
      ["uid=al\\C4\\B0ce,ou=people,dc=example,dc=org", ALICE],
      ["userid = Alice ; ou=People ; dc=example ; dc=org", ALICE],
      ['uid="alice",ou=people,dc=example,dc=org', ALICE],
      ["0.9.2342.19200300.100.1.1=\\61lice,ou=people,dc=example,dc=org", ALICE],
      ["uid;lang-en=alice,ou=people,dc=example,dc=org", ALICE],
      ["uid=\\ alice\\ ,ou=people,dc=example,dc=org", ALICE],
      ["uid=\talice,\tou=people,dc=example,dc=org", ALICE],
      ["uid=ａｌｉｃｅ,ou=people,dc=example,dc=org", ALICE],
      ["ou=PEOPLE,dc=example,dc=org", "ou=people,dc=example,dc=org"],
      ["dc=EXAMPLE;dc=org", "dc=example,dc=org"],
    ];
    for (const [dn, entry] of spellings) {
      expect(await entryNamed(dn), dn).toBe(entry);
      expect(namesAccountOrAbove(dn, account), dn).toBe(true);
    }
    // The control: an entry beside the account's is another entry, and does not count.
    expect(await entryNamed("uid=BOB,ou=people,dc=example,dc=org")).toBe(
      "uid=bob,ou=people,dc=example,dc=org",
    );
    expect(namesAccountOrAbove("uid=BOB,ou=people,dc=example,dc=org", account)).toBe(false);
  });

  it("telephoneNumber ignores '-' and spaces: an account named by it is matched by any value there", async () => {
    const account = rdnValues(PHONE);
    for (const dn of [
      // Slipped past the earlier reading, which compared the values' text.
      "telephoneNumber=5550100,ou=people,dc=example,dc=org",
      "telephoneNumber=555 01-00,ou=people,dc=example,dc=org",
    ]) {
      expect(await entryNamed(dn), dn).toBe(PHONE);
      expect(namesAccountOrAbove(dn, account), dn).toBe(true);
    }
  });

  it("a delete by the İ spelling removes the account's entry: what the listener must refuse", async () => {
    await admin.del("uid=ALİCE,ou=people,dc=example,dc=org");
    expect(await entryNamed(ALICE)).toBeNull();
    expect(await entryNamed("uid=bob,ou=people,dc=example,dc=org")).not.toBeNull();
  });
});
