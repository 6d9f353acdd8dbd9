import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdapterContext, AdapterError, type Credential } from "../../adapters/adapter.js";
import { canonicalDn, type LdapTarget, ldapAdapter, ldapConfig } from "../../adapters/ldap/index.js";
import { startSlapd, type TestSlapd } from "../support/slapd.js";
import { testPassword } from "./conformance.js";

// checkAccount against a real slapd with the documented least-privilege grant, an admin without
// write access, and the proof that the probe changes nothing; accountIdentity's DN form.

let slapd: TestSlapd;
const run = randomBytes(3).toString("hex");
const users: string[] = [];
const lines: string[] = [];
const secrets: string[] = [];

beforeAll(async () => {
  slapd = await startSlapd();
});

afterAll(async () => {
  await ldapAdapter.close?.();
  for (const u of users) await slapd.deleteUser(u).catch(() => undefined);
  await slapd?.stop();
});

function target(extra: Partial<LdapTarget> = {}): LdapTarget {
  return ldapConfig.parse({ url: slapd.url, accountDn: slapd.accountDnTemplate, ...extra });
}

function ctx(admin: Credential | undefined): AdapterContext {
  const push = (o: object, m?: string) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`);
  return { admin, log: { debug: push, info: push, warn: push, error: push }, timeoutMs: 10_000 };
}

async function user(suffix: string): Promise<Credential> {
  const username = `lhd${run}_${suffix}`;
  const password = testPassword();
  secrets.push(password);
  await slapd.addUser(username, password);
  users.push(username);
  return { username, password };
}

const rotator = (): Credential => ({ username: slapd.rotator.dn, password: slapd.rotator.password });

describe("ldap checkAccount", () => {
  it("the least-privilege admin DN: an existing entry passes, and the probe changes nothing", async () => {
    const app = await user("app");
    const before = await slapd.userPasswordValues(app.username);
    expect(await ldapAdapter.checkAccount?.(target(), app.username, ctx(rotator()))).toEqual({ valid: true });
    expect(await slapd.userPasswordValues(app.username)).toEqual(before);
    expect((await ldapAdapter.verify(target(), app, ctx(undefined))).valid).toBe(true);
  });

  it("a missing entry fails, naming its DN", async () => {
    const verdict = await ldapAdapter.checkAccount?.(target(), `lhd${run}_app_orders_9`, ctx(rotator()));
    expect(verdict?.valid).toBe(false);
    expect(verdict?.valid === false ? verdict.reason : "").toContain(
      `no such entry "uid=lhd${run}_app_orders_9,ou=people,dc=example,dc=org"`,
    );
  });

  it("an admin DN without write access to userPassword fails, and nothing changes", async () => {
    const app = await user("app2");
    const outsider = await user("outsider");
    const adminDn = slapd.userDn(outsider.username);
    const before = await slapd.userPasswordValues(app.username);
    const verdict = await ldapAdapter.checkAccount?.(
      target(),
      app.username,
      ctx({ username: adminDn, password: outsider.password }),
    );
    expect(verdict?.valid).toBe(false);
    // slapd checks write access before the values: insufficientAccessRights, not noSuchAttribute.
    expect(verdict?.valid === false ? verdict.reason : "").toMatch(
      /^admin ".*" may not modify userPassword of "uid=lhd\w+_app2,ou=people,dc=example,dc=org" \(LDAP result 50, insufficientAccessRights\)$/,
    );
    expect(await slapd.userPasswordValues(app.username)).toEqual(before);
    // The same admin's real change is refused by slapd too: the check predicted it.
    const err = await ldapAdapter
      .rotate(
        target(),
        { account: app.username, next: testPassword() },
        ctx({ username: adminDn, password: outsider.password }),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect(await slapd.userPasswordValues(app.username)).toEqual(before);
  });

  it("self mode cannot check without binding as the account: it passes", async () => {
    expect(await ldapAdapter.checkAccount?.(target(), `lhd${run}_whoever`, ctx(undefined))).toEqual({
      valid: true,
    });
  });

  it("a wrong admin password: authentication failed for that DN, at that address", async () => {
    const wrong = testPassword();
    const err = await ldapAdapter
      .checkAccount?.(target(), "anyone", ctx({ username: slapd.rotator.dn, password: wrong }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    const e = err as AdapterError;
    expect(e.code).toBe("auth_failed");
    expect(e.message).toBe(
      `ldap ldap://127.0.0.1:${slapd.port}: bind as admin "${slapd.rotator.dn}": authentication failed (invalidCredentials)`,
    );
    expect(e.message).not.toContain(wrong);
  });

  it("no password reached the log", () => {
    expect(lines.length).toBeGreaterThan(0);
    const text = lines.join("\n");
    for (const s of [...secrets, slapd.rotator.password]) expect(text).not.toContain(s);
  });
});

describe("ldap accountIdentity", () => {
  it("canonicalDn: attribute types and values compared as the directory does, escaping one way", () => {
    expect(canonicalDn("UID=App,OU=People,DC=Example,DC=org")).toBe("uid=app,ou=people,dc=example,dc=org");
    expect(canonicalDn("cn=Svc  Reports ,dc=x")).toBe("cn=svc reports,dc=x");
    expect(canonicalDn("cn=a\\2cb,dc=x")).toBe(canonicalDn("cn=a\\,b,dc=x"));
    expect(canonicalDn("cn=b+uid=a,dc=x")).toBe(canonicalDn("uid=a+cn=b,dc=x"));
    expect(canonicalDn("uid=a,dc=x")).not.toBe(canonicalDn("uid=b,dc=x"));
  });

  it("one identity per entry whatever the template's spelling, host alias or default port", () => {
    const id = (t: Partial<LdapTarget>, account = "app") =>
      ldapAdapter.accountIdentity?.(target(t), account) ?? "";
    const base = id({});
    expect(base).toBe(
      `ldap://localhost:${slapd.port}/${encodeURIComponent("uid=app,ou=people,dc=example,dc=org")}`,
    );
    expect(id({ accountDn: "UID={account},OU=People,DC=Example,DC=org" })).toBe(base);
    expect(id({ url: `ldap://LOCALHOST:${slapd.port}` })).toBe(base);
    expect(id({}, "APP")).toBe(base);
    expect(id({}, "app2")).not.toBe(base);
    expect(id({ accountDn: "uid={account},ou=staff,dc=example,dc=org" })).not.toBe(base);
    expect(id({ url: "ldap://ldap.example.org" })).toBe(id({ url: "ldap://ldap.example.org:389" }));
    expect(id({ url: "ldaps://ldap.example.org" })).toBe(id({ url: "ldaps://ldap.example.org:636" }));
  });
});
