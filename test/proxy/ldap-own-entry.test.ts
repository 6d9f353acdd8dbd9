import { Client } from "ldapts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { startSlapd, type TestSlapd } from "../support/slapd.js";
import { waitFor } from "../support/wait-for.js";
import { type Checkout, listenerPort, type ProxyHarness, startProxyHarness } from "./harness.js";
import { addLdapAccounts, ldapRegistrationBase } from "./ldap-setup.js";

/*
 * Through the real listener: a rename or delete of the leased account's own entry, spelled any
 * way slapd reads as that entry (İ, case, escapes, the OID, options, full width, ';'), is refused
 * with insufficientAccessRights (50) by the listener. The directory here lets an entry delete and
 * rename itself, so a request the listener let through would succeed (the control shows it).
 */

const RESOURCE = "px-ldap-own";
/** Names with an "i", the letter whose capital İ JavaScript and slapd fold differently. */
const LEASED = ["lidia", "irina"];
const CONTROLS = ["ilse", "ida"];

let h: ProxyHarness;
let slapd: TestSlapd;
let proxy: ProxyManager;
let lease: Checkout;
let root: Client;
const passwords = new Map<string, string>();

const REFUSED = { code: 50, message: expect.stringContaining("cannot be renamed, moved or deleted") };

/** Full-width forms of ASCII letters (U+FF21…), which slapd's matching folds to ASCII. */
const fullWidth = (s: string) =>
  [...s].map((ch) => String.fromCodePoint((ch.codePointAt(0) as number) - 0x21 + 0xff01)).join("");

/** Spellings of `uid=<account>,ou=people,dc=example,dc=org` that are not that string. */
function spellings(account: string): string[] {
  const people = "ou=people,dc=example,dc=org";
  const hex = (ch: string) => `\\${(ch.codePointAt(0) as number).toString(16)}`;
  return [
    `uid=${account.replaceAll("i", "İ")},${people}`,
    `UID=${account.toUpperCase().replaceAll("I", "İ")},OU=PEOPLE,DC=EXAMPLE,DC=ORG`,
    `uid=${account.replaceAll("i", "\\C4\\B0")},${people}`,
    `userid = ${account[0]?.toUpperCase()}${account.slice(1)} ; ou=People ; dc=example ; dc=org`,
    `uid="${account}",${people}`,
    `0.9.2342.19200300.100.1.1=${hex(account[0] as string)}${account.slice(1)},${people}`,
    `uid;lang-en=${account},${people}`,
    `uid=\\ ${account}\\ ,${people}`,
    `uid=${fullWidth(account)},${people}`,
  ];
}

/** The DN slapd keeps for the entry `dn` names, asked as the rootdn; null when there is none. */
async function entryNamed(dn: string): Promise<string | null> {
  try {
    const { searchEntries } = await root.search(dn, { scope: "base", attributes: ["1.1"] });
    return searchEntries[0]?.dn ?? null;
  } catch (err) {
    if ((err as { code?: number }).code === 32) return null;
    throw err;
  }
}

async function bound(url: string, dn: string, password: string): Promise<Client> {
  const c = new Client({ url, timeout: 10_000, connectTimeout: 5_000 });
  await c.bind(dn, password);
  return c;
}

async function refusals(rule: string): Promise<number> {
  return (await h.auditRecords()).filter(
    (x) =>
      x.event === "decision" &&
      x.tool === "ldap" &&
      x.lease_id === lease.leaseId &&
      String(x.reason).startsWith(`${rule}: `),
  ).length;
}

beforeAll(async () => {
  [slapd, h] = await Promise.all([
    startSlapd({ selfRemovable: true }),
    startProxyHarness({ name: "proxy-ldap-own" }),
  ]);
  for (const [name, pw] of await addLdapAccounts(h, slapd, [...LEASED, ...CONTROLS])) passwords.set(name, pw);
  await h.register({
    ...ldapRegistrationBase(slapd),
    name: RESOURCE,
    connection: { url: slapd.url, accountDn: slapd.accountDnTemplate },
    accounts: LEASED.map((name) => ({ name, password: passwords.get(name) })),
    proxy: { port: 0 },
  });
  proxy = await h.manager();
  lease = await h.checkout(RESOURCE);
  root = await bound(slapd.url, slapd.admin.dn, slapd.admin.password);
}, 120_000);

afterAll(async () => {
  await root?.unbind().catch(() => undefined);
  await h?.close();
  await slapd?.stop();
});

describe("the account's own entry through the LDAP listener", () => {
  it("the control: bound to slapd directly, an entry may delete itself and rename itself", async () => {
    const [del, ren] = CONTROLS as [string, string];
    const a = await bound(slapd.url, slapd.userDn(del), passwords.get(del) ?? "");
    try {
      await a.del(`uid=${del.replaceAll("i", "İ")},${slapd.peopleDn}`);
    } finally {
      await a.unbind();
    }
    expect(await entryNamed(slapd.userDn(del))).toBeNull();
    const b = await bound(slapd.url, slapd.userDn(ren), passwords.get(ren) ?? "");
    try {
      await b.modifyDN(slapd.userDn(ren), `uid=${ren}-renamed`);
    } finally {
      await b.unbind();
    }
    expect(await entryNamed(slapd.userDn(ren))).toBeNull();
    expect(await entryNamed(`uid=${ren}-renamed,${slapd.peopleDn}`)).not.toBeNull();
  });

  it("a delete of it spelled with İ, in capitals, escaped, by OID, with options or full width is refused with 50", async () => {
    const own = slapd.userDn(lease.account);
    const c = new Client({ url: `ldap://127.0.0.1:${listenerPort(proxy, RESOURCE)}`, timeout: 10_000 });
    const before = await refusals("delete of the account's entry");
    const tried = spellings(lease.account);
    try {
      await c.bind(`cn=${lease.leaseId}`, lease.token);
      for (const dn of tried) {
        // slapd reads the spelling as the account's entry…
        expect(await entryNamed(dn), dn).toBe(`uid=${lease.account},${slapd.peopleDn}`);
        // …and the listener does too.
        await expect(c.del(dn), dn).rejects.toMatchObject(REFUSED);
      }
      // The session goes on, as the account.
      expect((await c.exop("1.3.6.1.4.1.4203.1.11.3")).value).toBe(
        `dn:uid=${lease.account},${slapd.peopleDn}`,
      );
    } finally {
      await c.unbind();
    }
    expect(await entryNamed(own)).not.toBeNull();
    await waitFor("a decision record per refused delete", async () =>
      (await refusals("delete of the account's entry")) - before === tried.length ? true : undefined,
    );
  });

  it("a rename of it, or of the entry above it, spelled so is refused with 50; the entry keeps its DN", async () => {
    const own = `uid=${lease.account},${slapd.peopleDn}`;
    const c = new Client({ url: `ldap://127.0.0.1:${listenerPort(proxy, RESOURCE)}`, timeout: 10_000 });
    const before = await refusals("rename of the account's entry");
    const tried = [
      ...spellings(lease.account).map((dn) => [dn, `uid=${lease.account}-renamed`] as const),
      ["OU=PEOPLE,DC=EXAMPLE,DC=ORG", "ou=elsewhere"] as const,
      ["dc=EXAMPLE;dc=org", "dc=elsewhere"] as const,
    ];
    try {
      await c.bind(`cn=${lease.leaseId}`, lease.token);
      for (const [dn, to] of tried) await expect(c.modifyDN(dn, to), dn).rejects.toMatchObject(REFUSED);
      // An entry beside it is the server's to answer.
      await expect(c.del(`uid=nobody-${lease.leaseId},${slapd.peopleDn}`)).rejects.toMatchObject({
        code: 32,
      });
    } finally {
      await c.unbind();
    }
    expect(await entryNamed(own)).toBe(own);
    expect(await entryNamed(`uid=${lease.account}-renamed,${slapd.peopleDn}`)).toBeNull();
    await waitFor("a decision record per refused rename", async () =>
      (await refusals("rename of the account's entry")) - before === tried.length ? true : undefined,
    );
  });
});
