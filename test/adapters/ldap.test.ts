import { createHash, randomBytes } from "node:crypto";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import type { Socket } from "node:net";
import { join } from "node:path";
import fc from "fast-check";
import { Attribute, Change, Client } from "ldapts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { type AdapterContext, AdapterError } from "../../adapters/adapter.js";
import {
  accountDn,
  checkAccountDnTemplate,
  checkLdapAccountName,
  escapeDnValue,
  escapeFilterValue,
  type LdapTarget,
  ldapAdapter,
  ldapConfig,
  parseDn,
  passwordModifyRequest,
  sshaHash,
  unicodePwdValue,
} from "../../adapters/ldap/index.js";
import {
  type ConformanceReport,
  parseConformanceTarget,
  runConformance,
  runConformanceFromFile,
} from "../../sidecar/cli/adapters-test/index.js";
import type { Adapter } from "../../adapters/adapter.js";
import { freePort } from "../support/free-port.js";
import { hasOpenssl, startSlapd, type TestSlapd } from "../support/slapd.js";
import { adminSessions } from "../../adapters/admin-sessions.js";
import { adminSessionChecks } from "./admin-session-checks.js";
import { adapterConformance, testPassword } from "./conformance.js";
import { startStaleRelay } from "./stale-relay.js";
import { withSilentServer } from "../support/silent-server.js";
import { waitFor } from "../support/wait-for.js";

let slapd: TestSlapd;

beforeAll(async () => {
  slapd = await startSlapd();
});

afterAll(async () => {
  await slapd?.stop();
});

function target(extra: Partial<LdapTarget> = {}): LdapTarget {
  return ldapConfig.parse({ url: slapd.url, accountDn: slapd.accountDnTemplate, ...extra });
}

for (const passwordChange of ["exop", "modify-ssha"] as const) {
  adapterConformance({
    name: `ldap (${passwordChange}, least-privilege admin DN)`,
    adapter: ldapAdapter,
    async setup() {
      const closedPort = await freePort();
      return {
        target: target({ passwordChange }),
        // The documented grant, not the rootdn: write on userPassword and nothing else.
        admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
        createAccount: (name, password) => slapd.addUser(name, password),
        dropAccount: (name) => slapd.deleteUser(name),
        unreachableTarget: ldapConfig.parse({
          url: `ldap://127.0.0.1:${closedPort}`,
          accountDn: slapd.accountDnTemplate,
        }),
        unreachableAddress: `ldap://127.0.0.1:${closedPort}`,
        targetVia: (host, port) =>
          target({
            passwordChange,
            url: `ldap://${host.includes(":") ? `[${host}]` : host}:${port ?? slapd.port}`,
          }),
        teardown: async () => undefined,
      };
    },
  });
}

adminSessionChecks({
  name: "ldap (the least-privilege admin DN; its password is changed and restored)",
  adapter: ldapAdapter,
  selfRotation: true,
  async setup() {
    const setRotatorPassword = async (password: string) => {
      const root = new Client({ url: slapd.url });
      try {
        await root.bind(slapd.admin.dn, slapd.admin.password);
        await root.modify(
          slapd.rotator.dn,
          new Change({
            operation: "replace",
            modification: new Attribute({ type: "userPassword", values: [sshaHash(password)] }),
          }),
        );
      } finally {
        await root.unbind();
      }
    };
    return {
      target: target(),
      viaRelay: (port) =>
        ldapConfig.parse({ url: `ldap://127.0.0.1:${port}`, accountDn: slapd.accountDnTemplate }),
      serverPort: slapd.port,
      // slapd lists no connections without cn=monitor: reuse is seen on the pool's counters.
      admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
      createAccount: (name, password) => slapd.addUser(name, password),
      dropAccount: (name) => slapd.deleteUser(name),
      setAdminPassword: setRotatorPassword,
      teardown: async () => undefined,
    };
  },
});

describe("ldap adapter specifics", () => {
  const run = randomBytes(3).toString("hex");
  const users: string[] = [];
  const lines: string[] = [];
  const secrets: string[] = [];
  const pw = (): string => {
    const p = testPassword();
    secrets.push(p);
    return p;
  };
  const ctx = (admin: "rotator" | "root" | "none" = "rotator"): AdapterContext => ({
    admin:
      admin === "none"
        ? undefined
        : admin === "root"
          ? { username: slapd.admin.dn, password: slapd.admin.password }
          : { username: slapd.rotator.dn, password: slapd.rotator.password },
    log: {
      debug: (o, m) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`),
      info: (o, m) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`),
      warn: (o, m) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`),
      error: (o, m) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`),
    },
    timeoutMs: 10_000,
  });
  async function user(name: string, password = pw()): Promise<{ name: string; password: string }> {
    await slapd.addUser(name, password);
    users.push(name);
    return { name, password };
  }
  async function isValid(name: string, password: string, t = target()): Promise<boolean> {
    return (await ldapAdapter.verify(t, { username: name, password }, ctx())).valid;
  }

  afterAll(async () => {
    for (const name of users) await slapd.deleteUser(name).catch(() => undefined);
  });

  it("escapeDnValue follows RFC 4514 for the specials, ends and control characters", () => {
    expect(escapeDnValue("*)(uid=*")).toBe("*)(uid\\=*");
    expect(escapeDnValue("a,b=c")).toBe("a\\,b\\=c");
    expect(escapeDnValue("\\")).toBe("\\\\");
    expect(escapeDnValue('x"+;<>')).toBe('x\\"\\+\\;\\<\\>');
    expect(escapeDnValue("#lead")).toBe("\\#lead");
    expect(escapeDnValue("in#side")).toBe("in#side");
    expect(escapeDnValue(" both ")).toBe("\\ both\\ ");
    expect(escapeDnValue("mid dle")).toBe("mid dle");
    expect(escapeDnValue("nul\0\n")).toBe("nul\\00\\0a");
    expect(escapeDnValue("ünï-日本")).toBe("ünï-日本");
  });

  it("accountDn reads back as exactly the account for any name (property)", () => {
    const template = "uid={account},ou=people,dc=example,dc=org";
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), (name) => {
        const dn = accountDn(template, name);
        const parsed = parseDn(dn);
        expect(parsed).toHaveLength(4);
        expect(parsed[0]).toEqual([{ type: "uid", value: name }]);
        expect(parsed.slice(1)).toEqual(parseDn("ou=people,dc=example,dc=org"));
      }),
      { numRuns: 500 },
    );
    // The placeholder inside a longer value keeps the literal text around it.
    expect(parseDn(accountDn("cn=svc {account} (rw),dc=x", "a,b"))[0]).toEqual([
      { type: "cn", value: "svc a,b (rw)" },
    ]);
  });

  it("checkAccountDnTemplate refuses templates that cannot name one entry", () => {
    expect(checkAccountDnTemplate("uid={account},ou=people,dc=example,dc=org")).toBeNull();
    expect(checkAccountDnTemplate("uid=fixed,ou=people,dc=example,dc=org")).toMatch(/must contain/);
    expect(checkAccountDnTemplate("uid={account},cn={account},dc=x")).toMatch(/exactly once/);
    expect(checkAccountDnTemplate("uid={account}")).toMatch(/two RDNs/);
    expect(checkAccountDnTemplate("{account}=x,dc=org")).toMatch(/not a valid DN/);
    expect(checkAccountDnTemplate("uid={account},,dc=org")).not.toBeNull();
    expect(checkAccountDnTemplate('uid={account},o="quoted",dc=org')).not.toBeNull();
  });

  it("escapeFilterValue (RFC 4515) makes *)(uid=* match itself, not every entry", async () => {
    expect(escapeFilterValue("*)(uid=*")).toBe("\\2a\\29\\28uid=\\2a");
    expect(escapeFilterValue("back\\slash\0")).toBe("back\\5cslash\\00");
    const hostile = await user(`lhl${run}*)(uid=*`);
    await user(`lhl${run}_bystander`);
    const c = new Client({ url: slapd.url, timeout: 5_000 });
    try {
      await c.bind(slapd.admin.dn, slapd.admin.password);
      const search = (filter: string) =>
        c.search(slapd.peopleDn, { scope: "one", filter, attributes: ["uid"] }).then((r) => r.searchEntries);
      const exact = await search(`(uid=${escapeFilterValue(hostile.name)})`);
      expect(exact.map((e) => e.uid)).toEqual([hostile.name]);
      // Pasted unescaped, the same value would have widened the filter to every entry.
      const pasted = await search(`(uid=lhl${run}*)`);
      expect(pasted.length).toBeGreaterThanOrEqual(2);
    } finally {
      await c.unbind();
    }
  });

  it("hostile names address their own entry exactly: rotate changes it and no sibling", async () => {
    const sibling = await user(`lhl${run}a`);
    for (const name of [
      `lhl${run}a,b=c`,
      `lhl${run}a+uid=b`,
      `lhl${run}\\`,
      `lhl${run}h*)(uid=*`,
      `lhl${run}"q"<x>;`,
      ` lhl${run}lead`,
      `#lhl${run}hash`,
      `lhl${run}trail `,
    ]) {
      expect(checkLdapAccountName(name), JSON.stringify(name)).toBeNull();
      const u = await user(name);
      const next = pw();
      await ldapAdapter.rotate(target(), { account: name, current: u.password, next }, ctx());
      expect(await isValid(name, next), JSON.stringify(name)).toBe(true);
      expect(await isValid(name, u.password)).toBe(false);
      // The rootdn reads the entry the hex-escaped DN names: the change landed there.
      const [stored] = await slapd.userPasswordValues(name);
      expect(stored).toMatch(/^\{SSHA\}/);
    }
    expect(await isValid(sibling.name, sibling.password)).toBe(true);
  });

  it("refuses empty names, control characters, lone surrogates and names over 256 characters", async () => {
    for (const bad of ["", "a\0b", "new\nline", "tab\t", "del\x7f", "lone\ud800", "x".repeat(257)]) {
      expect(checkLdapAccountName(bad), JSON.stringify(bad)).not.toBeNull();
      const err = await ldapAdapter
        .rotate(target(), { account: bad, next: pw() }, ctx())
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AdapterError);
      expect((err as AdapterError).retryable).toBe(false);
    }
    expect(checkLdapAccountName("x".repeat(256))).toBeNull();
  });

  it("modify-ssha stores an {SSHA} hash, never the password; exop lets the server hash it", async () => {
    const a = await user(`lhl${run}_ssha`);
    const next = pw();
    await ldapAdapter.rotate(target({ passwordChange: "modify-ssha" }), { account: a.name, next }, ctx());
    const values = await slapd.userPasswordValues(a.name);
    expect(values).toHaveLength(1);
    expect(values[0]).toMatch(/^\{SSHA\}/);
    expect(values[0]).not.toContain(next);

    const again = pw();
    await ldapAdapter.rotate(target({ passwordChange: "exop" }), { account: a.name, next: again }, ctx());
    const byServer = await slapd.userPasswordValues(a.name);
    expect(byServer).toHaveLength(1);
    expect(byServer[0]).toMatch(/^\{SSHA\}/);
    expect(await isValid(a.name, again)).toBe(true);
  });

  it("modify-cleartext writes the value itself (for servers that hash on write)", async () => {
    const a = await user(`lhl${run}_clear`);
    const next = pw();
    const t = target({ passwordChange: "modify-cleartext" });
    await ldapAdapter.rotate(t, { account: a.name, current: a.password, next }, ctx("none"));
    expect(await isValid(a.name, next)).toBe(true);
    expect(await slapd.userPasswordValues(a.name)).toEqual([next]);
  });

  it("sshaHash and passwordModifyRequest produce the standard encodings", () => {
    const salt = Buffer.from("01020304", "hex");
    // Recomputed by hand: base64(sha1("secret" || salt) || salt).
    const digest = createHash("sha1").update("secret").update(salt).digest();
    expect(sshaHash("secret", salt)).toBe(`{SSHA}${Buffer.concat([digest, salt]).toString("base64")}`);
    // SEQUENCE { [0] "uid=a", [2] "pw" }
    expect(passwordModifyRequest({ userIdentity: "uid=a", newPasswd: "pw" }).toString("hex")).toBe(
      "300b80057569643d6182027077",
    );
    expect(passwordModifyRequest({ oldPasswd: "o", newPasswd: "n" }).toString("hex")).toBe(
      "300681016f82016e",
    );
    expect(unicodePwdValue("Ab1").toString("hex")).toBe("22004100620031002200");
  });

  it("the config schema names the field it refuses, and converts to JSON Schema", () => {
    const base = {
      url: "ldap://dir.example.org:389",
      accountDn: "uid={account},ou=people,dc=example,dc=org",
    };
    expect(ldapConfig.parse(base)).toEqual(base);
    const issues = (value: unknown) =>
      ldapConfig.safeParse(value).error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`) ?? [];
    expect(issues({ ...base, activeDirectory: true })[0]).toMatch(/^startTls: .*TLS/);
    expect(issues({ ...base, activeDirectory: true, startTls: true })).toEqual([]);
    expect(issues({ ...base, url: "ldaps://dc.example.org", activeDirectory: true })).toEqual([]);
    expect(issues({ ...base, url: "ldaps://dc", activeDirectory: true, passwordChange: "exop" })[0]).toMatch(
      /^passwordChange: /,
    );
    expect(issues({ ...base, url: "ldap://user:pw@host" })[0]).toMatch(/^url: /);
    expect(issues({ ...base, url: "ldap://host/dc=x?uid" })[0]).toMatch(/^url: /);
    expect(issues({ ...base, url: "http://host" })[0]).toMatch(/^url: /);
    expect(issues({ ...base, accountDn: "uid=fixed,dc=org" })[0]).toMatch(/^accountDn: /);
    expect(issues({ ...base, tls: { ca: "PEM" } })[0]).toMatch(/^tls: /);
    expect(issues({ ...base, bindDn: "x" })).toHaveLength(1);
    const schema = z.toJSONSchema(ldapConfig, { io: "input" });
    expect(JSON.stringify(schema)).toContain("accountDn");
  });

  it("Active Directory mode is refused at call time without TLS, before any connection", async () => {
    // A target that skipped the schema (e.g. built in code) is still refused.
    const unsafe = { ...target(), activeDirectory: true } as LdapTarget;
    const err = await ldapAdapter
      .rotate(unsafe, { account: "anyone", next: pw() }, ctx())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).message).toMatch(/TLS/);
    expect((err as AdapterError).retryable).toBe(false);
  });

  it("an empty password never binds: verify says invalid without asking the server", async () => {
    const closed = ldapConfig.parse({
      url: `ldap://127.0.0.1:${await freePort()}`,
      accountDn: slapd.accountDnTemplate,
    });
    const verdict = await ldapAdapter.verify(closed, { username: "anyone", password: "" }, ctx());
    expect(verdict.valid).toBe(false);
    const err = await ldapAdapter
      .rotate(
        target(),
        { account: `lhl${run}_x`, next: pw() },
        {
          ...ctx(),
          admin: { username: slapd.rotator.dn, password: "" },
        },
      )
      .catch((e: unknown) => e);
    expect((err as AdapterError).code).toBe("auth_failed");
  });

  it("StartTLS against a server without TLS fails without sending the password in clear", async () => {
    const a = await user(`lhl${run}_tls`);
    const err = await ldapAdapter
      .verify(target({ startTls: true }), { username: a.name, password: a.password }, ctx())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).message).toMatch(/StartTLS/);
  });

  it("a server that never answers gives a retryable timeout", async () => {
    await withSilentServer(async (port) => {
      const err = await ldapAdapter
        .verify(
          ldapConfig.parse({ url: `ldap://127.0.0.1:${port}`, accountDn: slapd.accountDnTemplate }),
          { username: "x", password: "y" },
          { ...ctx(), timeoutMs: 300 },
        )
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AdapterError);
      expect((err as AdapterError).code).toBe("timeout");
      expect((err as AdapterError).retryable).toBe(true);
    });
  });

  it("an admin DN without the grant gets a non-retryable privilege error", async () => {
    const a = await user(`lhl${run}_victim`);
    const b = await user(`lhl${run}_intruder`);
    // b may write its own userPassword only; changing a's is refused by the ACL.
    const err = await ldapAdapter
      .rotate(
        target({ passwordChange: "modify-ssha" }),
        { account: a.name, next: pw() },
        {
          ...ctx(),
          admin: { username: slapd.userDn(b.name), password: b.password },
        },
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe("privilege");
    expect((err as AdapterError).retryable).toBe(false);
    expect(await isValid(a.name, a.password)).toBe(true);
  });

  it("has no terminateSessions (binds last one operation)", () => {
    expect(ldapAdapter.terminateSessions).toBeUndefined();
  });

  it("logs no password", () => {
    expect(lines.length).toBeGreaterThan(0);
    const leaks = secrets.filter((s) => lines.some((l) => l.includes(s)));
    expect(leaks.length, `${leaks.length} password(s) in ${lines.length} lines`).toBe(0);
  });
});

describe("the conformance runner of `leasehold adapters test`, against slapd", () => {
  const run = randomBytes(3).toString("hex");
  const users: string[] = [];
  const quiet = {
    debug: () => undefined,
    info: () => undefined,
    warn: () => undefined,
    error: () => undefined,
  };

  async function accounts(n: number): Promise<Array<{ name: string; password: string }>> {
    const out: Array<{ name: string; password: string }> = [];
    for (let i = 0; i < n; i++) {
      const a = { name: `lhx${run}_${users.length}`, password: testPassword() };
      await slapd.addUser(a.name, a.password);
      users.push(a.name);
      out.push(a);
    }
    return out;
  }
  async function verifies(name: string, password: string): Promise<boolean> {
    return (
      await ldapAdapter.verify(target(), { username: name, password }, { log: quiet, timeoutMs: 5_000 })
    ).valid;
  }
  const connection = () => ({ url: slapd.url, accountDn: slapd.accountDnTemplate });
  const failedChecks = (r: ConformanceReport) => r.failed.map((f) => f.check);

  afterAll(async () => {
    for (const name of users) await slapd.deleteUser(name).catch(() => undefined);
  });

  it("passes a sound adapter in self and admin mode, and puts the original passwords back", async () => {
    const given = await accounts(2);
    const seen: string[] = [];
    const report = await runConformance({
      adapter: ldapAdapter,
      target: connection(),
      admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
      accounts: given,
      rotateWith: "self",
      unreachable: { url: `ldap://127.0.0.1:${await freePort()}`, accountDn: slapd.accountDnTemplate },
      onResult: (r) => seen.push(`${r.outcome} ${r.check}`),
    });
    expect(report.failed).toEqual([]);
    expect(report.unrestored).toEqual([]);
    expect(report.passed).toContain("self rotate falls back to previous, and a repeat is a no-op");
    expect(report.passed).toContain(
      "admin rotate of an account that does not exist fails without creating it",
    );
    expect(report.passed.filter((c) => c.startsWith("hostile account names")).length).toBeGreaterThanOrEqual(
      12,
    );
    expect(report.passed).toContain("every account gets its original password back");
    expect(report.passed.at(-1)).toBe("no password appears in any log line or error message");
    expect(report.skipped.map((s) => s.check)).toEqual([
      "terminateSessions ends the account's open sessions and no others",
    ]);
    expect(seen.length).toBe(report.passed.length + report.skipped.length);
    for (const a of given) expect(await verifies(a.name, a.password)).toBe(true);
  });

  it("runs from a YAML target file, with one account only", async () => {
    const [only] = await accounts(1);
    if (only === undefined) throw new Error("no account");
    const dir = await mkdtemp(join(tmpdir(), "leasehold-target-"));
    try {
      const file = join(dir, "target.yaml");
      await writeFile(
        file,
        [
          "connection:",
          `  url: ${slapd.url}`,
          `  accountDn: "${slapd.accountDnTemplate}"`,
          "  passwordChange: modify-ssha",
          "rotateWith: admin",
          `admin: { username: "${slapd.rotator.dn}", password: "${slapd.rotator.password}" }`,
          "accounts:",
          `  - { name: ${only.name}, password: "${only.password}" }`,
        ].join("\n"),
        { mode: 0o600 },
      );
      const report = await runConformanceFromFile(ldapAdapter, file);
      expect(report.failed).toEqual([]);
      expect(report.skipped.map((s) => s.check)).toContain(
        "an unreachable target gives retryable AdapterErrors",
      );
      expect(await verifies(only.name, only.password)).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("fails a verify that accepts anything, and a rotate that changes nothing", async () => {
    const given = await accounts(2);
    const gullible: Adapter<LdapTarget> = {
      ...ldapAdapter,
      id: "gullible",
      verify: async () => ({ valid: true }),
    };
    const a = await runConformance({
      adapter: gullible,
      target: connection(),
      admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
      accounts: given,
    });
    expect(failedChecks(a)).toContain("verify answers a wrong password with valid:false, not an error");
    expect(failedChecks(a)).toContain("admin rotate: the new password works and the old one no longer does");

    const lazy: Adapter<LdapTarget> = { ...ldapAdapter, id: "lazy", rotate: async () => undefined };
    const b = await runConformance({
      adapter: lazy,
      target: connection(),
      admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
      accounts: given,
    });
    expect(failedChecks(b)).toContain("admin rotate: the new password works and the old one no longer does");
    expect(failedChecks(b)).toContain(
      "admin rotate of an account that does not exist fails without creating it",
    );
    expect(b.unrestored).toEqual([]);
    for (const acct of given) expect(await verifies(acct.name, acct.password)).toBe(true);
  });

  it("fails an adapter that logs the new password, without printing it", async () => {
    const given = await accounts(1);
    const leaky: Adapter<LdapTarget> = {
      ...ldapAdapter,
      id: "leaky",
      async rotate(t, change, ctx) {
        ctx.log.debug({ next: change.next }, "about to rotate");
        return ldapAdapter.rotate(t, change, ctx);
      },
    };
    const report = await runConformance({
      adapter: leaky,
      target: connection(),
      admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
      accounts: given,
    });
    const leak = report.failed.find(
      (f) => f.check === "no password appears in any log line or error message",
    );
    expect(leak?.error).toMatch(/password\(s\) found/);
    expect(JSON.stringify(report)).not.toContain(given[0]?.password ?? "?");
    expect(report.unrestored).toEqual([]);
  });

  it("changes nothing when the given password is wrong or the connection is invalid", async () => {
    const [a] = await accounts(1);
    if (a === undefined) throw new Error("no account");
    const wrong = await runConformance({
      adapter: ldapAdapter,
      target: connection(),
      admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
      accounts: [{ name: a.name, password: testPassword() }],
    });
    expect(wrong.passed).toEqual([]);
    expect(wrong.failed).toEqual([
      {
        check: "the target file describes a usable target",
        error: "accounts.0: the given password does not verify",
      },
    ]);
    expect(await verifies(a.name, a.password)).toBe(true);

    const invalid = await runConformance({
      adapter: ldapAdapter,
      target: { url: "http://nope", accountDn: "uid=x" },
      accounts: [{ name: a.name, password: "short" }],
    });
    const error = invalid.failed[0]?.error ?? "";
    expect(error).toMatch(/connection: url: /);
    expect(error).toMatch(/accountDn: /);
    expect(error).toMatch(/admin: required/);
    expect(error).toMatch(/accounts\.0\.password: outside/);
  });

  it("parses target files strictly, naming the field", () => {
    expect(() => parseConformanceTarget("connection: {}\naccounts: []\n", "t.yaml")).toThrow(/accounts/);
    expect(() =>
      parseConformanceTarget("connection: {}\naccounts: [{name: a, password: b}]\n", "t.yaml"),
    ).toThrow(/admin: is required with rotateWith: admin/);
    expect(() => parseConformanceTarget("{ not yaml", "t.yaml")).toThrow(/not valid YAML/);
    const ok = parseConformanceTarget(
      JSON.stringify({
        connection: { host: "x" },
        rotateWith: "self",
        accounts: [{ name: "a", password: "b" }],
      }),
      "t.json",
    );
    expect(ok.rotateWith).toBe("self");
    expect(() =>
      parseConformanceTarget(
        JSON.stringify({
          connection: {},
          rotateWith: "self",
          accounts: [{ name: "a", password: "b" }],
          extra: 1,
        }),
        "t.json",
      ),
    ).toThrow(/t\.json/);
  });
});

describe.skipIf(!hasOpenssl())("ldap over TLS (StartTLS and ldaps://, a throwaway CA)", () => {
  let secure: TestSlapd;
  const run = randomBytes(3).toString("hex");
  const quiet = {
    debug: () => undefined,
    info: () => undefined,
    warn: () => undefined,
    error: () => undefined,
  };
  const ctx = (): AdapterContext => ({
    admin: { username: secure.rotator.dn, password: secure.rotator.password },
    log: quiet,
    timeoutMs: 10_000,
  });
  const tlsTarget = (extra: Record<string, unknown>): LdapTarget =>
    ldapConfig.parse({ url: secure.url, accountDn: secure.accountDnTemplate, ...extra });

  beforeAll(async () => {
    secure = await startSlapd({ tls: true });
  });
  afterAll(async () => {
    await secure?.stop();
  });

  it("StartTLS with the CA: verify and admin rotate work", async () => {
    const name = `lht${run}_starttls`;
    const password = testPassword();
    await secure.addUser(name, password);
    const t = tlsTarget({ startTls: true, tls: { ca: secure.caPem } });
    expect((await ldapAdapter.verify(t, { username: name, password }, ctx())).valid).toBe(true);
    const next = testPassword();
    await ldapAdapter.rotate(t, { account: name, current: password, next }, ctx());
    expect((await ldapAdapter.verify(t, { username: name, password: next }, ctx())).valid).toBe(true);
    expect((await ldapAdapter.verify(t, { username: name, password }, ctx())).valid).toBe(false);
  });

  it("StartTLS: a pooled admin connection is reused, and one that closed or died is replaced", async () => {
    const relay = await startStaleRelay(secure.port);
    // Every TCP socket this process opens from here on, so the test can wait for the pool's to close.
    const sockets: Socket[] = [];
    const onSocket = (m: unknown) => void sockets.push((m as { socket: Socket }).socket);
    subscribe("net.client.socket", onSocket);
    try {
      await ldapAdapter.close?.();
      const name = `lht${run}_starttls_pool`;
      let password = testPassword();
      await secure.addUser(name, password);
      // The relay listens on 127.0.0.1 too, which the test certificate names.
      const t = ldapConfig.parse({
        url: `ldap://127.0.0.1:${relay.port}`,
        accountDn: secure.accountDnTemplate,
        startTls: true,
        tls: { ca: secure.caPem },
      });
      const rotate = async () => {
        const next = testPassword();
        await ldapAdapter.rotate(t, { account: name, current: password, next }, ctx());
        expect((await ldapAdapter.verify(t, { username: name, password: next }, ctx())).valid).toBe(true);
        password = next;
      };
      const stats = adminSessions.stats("ldap");
      const start = { ...stats };
      await rotate();
      await rotate();
      expect(stats.opened - start.opened).toBe(1);
      expect(stats.reused - start.reused).toBe(1);
      // ldapts does not watch the TLS socket after StartTLS; the pool must see it close.
      relay.cutAll();
      await waitFor("the pooled connection's socket to close", () => sockets.every((x) => x.closed));
      // The TLS socket on top closes on its parent's 'close', in the same turn of the event loop.
      await new Promise((resolve) => setImmediate(resolve));
      await rotate();
      expect(stats.opened - start.opened).toBe(2);
      expect(stats.retried - start.retried).toBe(0);
      relay.severOnNextSend();
      await rotate();
      expect(stats.opened - start.opened).toBe(3);
      expect(stats.retried - start.retried).toBe(1);
    } finally {
      unsubscribe("net.client.socket", onSocket);
      await ldapAdapter.close?.();
      await relay.close();
    }
  });

  it("ldaps:// with the CA: self rotate works", async () => {
    const name = `lht${run}_ldaps`;
    const password = testPassword();
    await secure.addUser(name, password);
    const t = ldapConfig.parse({
      url: secure.ldapsUrl,
      accountDn: secure.accountDnTemplate,
      tls: { ca: secure.caPem },
    });
    const next = testPassword();
    await ldapAdapter.rotate(t, { account: name, current: password, next }, { ...ctx(), admin: undefined });
    expect((await ldapAdapter.verify(t, { username: name, password: next }, ctx())).valid).toBe(true);
  });

  it("an untrusted certificate or a wrong name is a non-retryable TLS failure", async () => {
    for (const t of [
      tlsTarget({ startTls: true }),
      ldapConfig.parse({ url: secure.ldapsUrl, accountDn: secure.accountDnTemplate }),
      tlsTarget({ startTls: true, tls: { ca: secure.caPem, servername: "ldap.example.org" } }),
    ]) {
      const err = await ldapAdapter
        .verify(t, { username: "anyone", password: testPassword() }, ctx())
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AdapterError);
      expect((err as AdapterError).message).toMatch(/TLS/);
      expect((err as AdapterError).retryable).toBe(false);
    }
  });

  it("Active Directory mode sends unicodePwd over TLS (OpenLDAP has no such attribute: refused, not retried)", async () => {
    const name = `lht${run}_ad`;
    await secure.addUser(name, testPassword());
    const t = tlsTarget({ startTls: true, tls: { ca: secure.caPem }, activeDirectory: true });
    const err = await ldapAdapter
      .rotate(
        t,
        { account: name, next: testPassword() },
        { ...ctx(), admin: { username: secure.admin.dn, password: secure.admin.password } },
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe("invalid");
    expect((err as AdapterError).message).toMatch(/unicodePwd/);
  });
});
