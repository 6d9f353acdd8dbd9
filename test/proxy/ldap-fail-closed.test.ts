import { Client } from "ldapts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { startSlapd, type TestSlapd } from "../support/slapd.js";
import { waitFor } from "../support/wait-for.js";
import { listenerPort, type ProxyHarness, startProxyHarness } from "./harness.js";
import { addLdapAccounts, ldapRegistrationBase } from "./ldap-setup.js";

// A refusal the LDAP listener answers itself is a decision record; when that record cannot be
// written, the session ends (fail closed), as on every other listener.
const RESOURCE = "px-ldap-closed";

let h: ProxyHarness;
let slapd: TestSlapd;
let proxy: ProxyManager;

beforeAll(async () => {
  [slapd, h] = await Promise.all([startSlapd(), startProxyHarness({ name: "proxy-ldap-closed" })]);
  const passwords = await addLdapAccounts(h, slapd, ["pxclosed_1"]);
  await h.register({
    ...ldapRegistrationBase(slapd),
    name: RESOURCE,
    connection: { url: slapd.url, accountDn: slapd.accountDnTemplate },
    accounts: [{ name: "pxclosed_1", password: passwords.get("pxclosed_1") }],
    proxy: { port: 0 },
  });
  proxy = await h.manager();
}, 120_000);

afterAll(async () => {
  await h?.close();
  await slapd?.stop();
});

describe("LDAP listener, audit log unwritable", () => {
  it("a refused request whose decision record cannot be written ends the session", async () => {
    const l = await h.checkout(RESOURCE);
    const c = new Client({ url: `ldap://127.0.0.1:${listenerPort(proxy, RESOURCE)}`, timeout: 10_000 });
    const own = slapd.accountDnTemplate.replace("{account}", l.account);
    const search = () =>
      c.search(own, { scope: "base" }).then(
        (r) => r.searchEntries.length,
        (e: Error) => e,
      );
    try {
      await c.bind(`cn=${l.leaseId}`, l.token);
      expect(await search()).toBe(1);
      await h.node.audit.close();
      // Refused at the listener as ever (a second bind), but its record is refused by the log.
      await expect(c.bind(slapd.admin.dn, slapd.admin.password)).rejects.toMatchObject({ code: 49 });
      const ended = await waitFor("the session to end", async () => {
        const r = await search();
        return r instanceof Error ? r : undefined;
      });
      expect(ended).toBeInstanceOf(Error);
    } finally {
      await c.unbind().catch(() => undefined);
    }
    await h.expectNoSecretLeaked();
  });
});
