import { Client } from "ldapts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { startSlapd, type TestSlapd } from "../support/slapd.js";
import { waitFor } from "../support/wait-for.js";
import { type Checkout, listenerPort, type ProxyHarness, startProxyHarness } from "./harness.js";
import { addLdapAccounts, ldapRegistrationBase } from "./ldap-setup.js";

// proxy.limits on the LDAP listener: requests are statements, the server's bytes count against the cap.
const CAPPED = "px-ldap-cap";
const RATED = "px-ldap-rate";
const CAP = 4_000;
const ACCOUNTS = ["pxlim_1", "pxlim_2", "pxlim_3"];

let h: ProxyHarness;
let slapd: TestSlapd;
let proxy: ProxyManager;

function client(resource: string): Client {
  return new Client({ url: `ldap://127.0.0.1:${listenerPort(proxy, resource)}`, timeout: 10_000 });
}

async function bound(resource: string, l: Checkout): Promise<Client> {
  const c = client(resource);
  await c.bind(`cn=${l.leaseId}`, l.token);
  return c;
}

async function ownEntry(c: Client, account: string): Promise<number> {
  const { searchEntries } = await c.search(slapd.accountDnTemplate.replace("{account}", account), {
    scope: "base",
  });
  return searchEntries.length;
}

async function limitRecords(leaseId: string): Promise<Array<Record<string, unknown>>> {
  return (await h.auditRecords()).filter(
    (r) => r.event === "decision" && r.scope === "proxy_limit" && r.lease_id === leaseId,
  );
}

beforeAll(async () => {
  [slapd, h] = await Promise.all([startSlapd(), startProxyHarness({ name: "proxy-ldap-limits" })]);
  const passwords = await addLdapAccounts(h, slapd, ACCOUNTS);
  const base = {
    ...ldapRegistrationBase(slapd),
    connection: { url: slapd.url, accountDn: slapd.accountDnTemplate },
  };
  const accounts = (names: string[]) => names.map((name) => ({ name, password: passwords.get(name) }));
  await h.register({
    ...base,
    name: CAPPED,
    accounts: accounts(ACCOUNTS.slice(0, 2)),
    proxy: { port: 0, limits: { bytesReturned: CAP } },
  });
  await h.register({
    ...base,
    name: RATED,
    accounts: accounts(ACCOUNTS.slice(2)),
    proxy: { port: 0, limits: { statementsPerSecond: 4 } },
  });
  proxy = await h.manager();
}, 120_000);

afterAll(async () => {
  await h?.close();
  await slapd?.stop();
});

describe("proxy.limits on the LDAP listener", () => {
  it("searches past bytesReturned end the session (audited); the lease binds no more (adminLimitExceeded)", async () => {
    const l = await h.checkout(CAPPED);
    const c = await bound(CAPPED, l);
    let found = 0;
    const err = await (async () => {
      for (let i = 0; i < 200; i++) found += await ownEntry(c, l.account);
    })().then(
      () => undefined,
      (e: Error) => e,
    );
    await c.unbind().catch(() => undefined);
    expect(err).toBeInstanceOf(Error);
    // Each answer is a few hundred bytes: some searches went through before the cap, never all.
    expect(found).toBeGreaterThan(0);
    expect(found).toBeLessThan(200);
    const recs = await waitFor("the proxy_limit record", async () => {
      const r = await limitRecords(l.leaseId);
      return r.length > 0 ? r : undefined;
    });
    expect(recs[0]).toMatchObject({ decision: "deny", tool: "ldap" });
    expect(String(recs[0]?.reason)).toContain("proxy.limits.bytesReturned");
    const again = client(CAPPED);
    const refused = await again.bind(`cn=${l.leaseId}`, l.token).then(
      () => undefined,
      (e: { code?: number; message: string }) => e,
    );
    await again.unbind().catch(() => undefined);
    expect(refused?.code).toBe(11);
    expect(refused?.message).toContain("proxy.limits.bytesReturned");
    // Another lease of the resource has its own count.
    const other = await h.checkout(CAPPED, { agent: "b" });
    const o = await bound(CAPPED, other);
    expect(await ownEntry(o, other.account)).toBe(1);
    await o.unbind();
  });

  it("a burst over statementsPerSecond is held back, not refused", async () => {
    const l = await h.checkout(RATED);
    const c = await bound(RATED, l);
    try {
      const started = Date.now();
      let found = 0;
      for (let i = 0; i < 12; i++) found += await ownEntry(c, l.account);
      const elapsed = Date.now() - started;
      expect(found).toBe(12);
      // 4 at once, then 4 a second: the 12th search is not even read before (11 - 4) / 4 = 1.75 s.
      expect(elapsed).toBeGreaterThanOrEqual(1500);
    } finally {
      await c.unbind().catch(() => undefined);
    }
  });

  it("no token or password appears in the logs or the audit trail", async () => {
    await h.expectNoSecretLeaked();
  });
});
