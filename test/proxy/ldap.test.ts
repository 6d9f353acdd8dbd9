import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Attribute, Change, Client } from "ldapts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runLdapSearch } from "../../sidecar/mcp/runners/ldap-runner.js";
import { extendedRequest, simpleBindRequest } from "../../sidecar/proxy/ldap/messages.js";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { ldapLogin, startSlapd, type TestSlapd } from "../support/slapd.js";
import { waitFor } from "../support/wait-for.js";
import { type Checkout, listenerPort, type ProxyHarness, startProxyHarness } from "./harness.js";
import { addLdapAccounts, ldapRegistrationBase } from "./ldap-setup.js";
import { run, toolEnv } from "./processes.js";
import { baseSearch, count, replies } from "./ldap-wire.js";
import { rawConnect, readUntil, readUntilClose } from "./wire.js";

const RESOURCE = "px-ldap";
const SECURE = "px-ldap-starttls";
const ACCOUNTS = ["px_l1", "px_l2", "px_l3", "px_l4", "px_l5", "px_l6", "px_l7"];
const LDAPS = "px-ldap-ldaps";
const UNTRUSTED = "px-ldap-untrusted";
const PASSWORDS = new Map<string, string>();

let h: ProxyHarness;
let slapd: TestSlapd;
let proxy: ProxyManager;
let port = 0;
let lease: Checkout;

function viaProxy(url = `ldap://127.0.0.1:${port}`): Client {
  // ldapts speaks TLS from the first byte whenever it is given tlsOptions: only for ldaps://.
  const tls = url.startsWith("ldaps:") ? { tlsOptions: { rejectUnauthorized: false } } : {};
  return new Client({ url, timeout: 10_000, connectTimeout: 5_000, ...tls });
}

async function tool(name: string, l: Checkout, args: readonly string[], input = "", uri?: string) {
  const file = join(h.dir, `pw-${randomBytes(4).toString("hex")}`);
  await writeFile(file, l.token, { mode: 0o600 });
  return run(
    name,
    ["-x", "-H", uri ?? `ldap://127.0.0.1:${port}`, "-D", `cn=${l.leaseId}`, "-y", file, ...args],
    toolEnv({ LDAPTLS_REQCERT: "never" }),
    input,
  );
}

beforeAll(async () => {
  await Promise.all([
    startSlapd({ tls: true, selfWritable: ["description"] }).then((s) => {
      slapd = s;
    }),
    startProxyHarness({ name: "proxy-ldap" }).then((x) => {
      h = x;
    }),
  ]);
  for (const [name, pw] of await addLdapAccounts(h, slapd, ACCOUNTS)) PASSWORDS.set(name, pw);
  const base = ldapRegistrationBase(slapd);
  const accounts = (names: string[]) => names.map((name) => ({ name, password: PASSWORDS.get(name) }));
  const plain = { url: slapd.url, accountDn: slapd.accountDnTemplate };
  await h.register({
    ...base,
    name: RESOURCE,
    connection: plain,
    accounts: accounts(ACCOUNTS.slice(0, 3)),
    proxy: { port: 0 },
  });
  await h.register({
    ...base,
    name: SECURE,
    connection: {
      url: slapd.url,
      accountDn: slapd.accountDnTemplate,
      startTls: true,
      tls: { ca: slapd.caPem },
    },
    accounts: accounts(ACCOUNTS.slice(3)),
    proxy: { port: 0 },
  });
  await h.register({
    ...base,
    name: LDAPS,
    connection: { url: slapd.ldapsUrl, accountDn: slapd.accountDnTemplate, tls: { ca: slapd.caPem } },
    accounts: accounts(["px_l6"]),
    proxy: { port: 0 },
  });
  proxy = await h.manager();
  port = listenerPort(proxy, RESOURCE);
  lease = await h.checkout(RESOURCE);
}, 120_000);

afterAll(async () => {
  await h?.close();
  await slapd?.stop();
});

describe("LDAP listener with real clients", () => {
  it("ldapts binds as cn=<lease id> with the token and runs as the leased account", async () => {
    expect(proxy.endpointFor(RESOURCE)).toEqual({ host: "127.0.0.1", port, protocol: "ldap" });
    const c = viaProxy();
    try {
      await c.bind(`cn=${lease.leaseId}`, lease.token);
      const who = await c.exop("1.3.6.1.4.1.4203.1.11.3");
      expect(who.value).toBe(`dn:uid=${lease.account},${slapd.peopleDn}`);
      const { searchEntries } = await c.search(slapd.userDn(lease.account), { scope: "base" });
      expect(searchEntries[0]?.uid).toBe(lease.account);
    } finally {
      await c.unbind();
    }
  });
});

describe("LDAP listener with the OpenLDAP tools", () => {
  it("ldapsearch finds the account's own entry through the listener", async () => {
    const dn = `uid=${lease.account},${slapd.peopleDn}`;
    const out = await tool("ldapsearch", lease, [
      "-LLL",
      "-b",
      dn,
      "-s",
      "base",
      "(objectClass=*)",
      "uid",
      "sn",
    ]);
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`dn: ${dn}`);
    expect(out.stdout).toContain(`uid: ${lease.account}`);
  });

  it("ldapmodify changes an attribute the account may write, and the server keeps it", async () => {
    const dn = `uid=${lease.account},${slapd.peopleDn}`;
    const ldif = `dn: ${dn}\nchangetype: modify\nreplace: description\ndescription: set through the listener\n`;
    const out = await tool("ldapmodify", lease, [], ldif);
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    const back = await tool("ldapsearch", lease, [
      "-LLL",
      "-b",
      dn,
      "-s",
      "base",
      "(objectClass=*)",
      "description",
    ]);
    expect(back.stdout).toContain("description: set through the listener");
  });

  it("ldapsearch -ZZ (StartTLS) and ldaps:// both bind through the listener's TLS", async () => {
    const dn = `uid=${lease.account},${slapd.peopleDn}`;
    const starttls = await tool("ldapsearch", lease, ["-ZZ", "-LLL", "-b", dn, "-s", "base", "uid"]);
    expect(starttls.stderr).toBe("");
    expect(starttls.stdout).toContain(`uid: ${lease.account}`);
    const ldaps = await tool(
      "ldapsearch",
      lease,
      ["-LLL", "-b", dn, "-s", "base", "uid"],
      "",
      `ldaps://127.0.0.1:${port}`,
    );
    expect(ldaps.stderr).toBe("");
    expect(ldaps.stdout).toContain(`uid: ${lease.account}`);
  });

  it("a wrong token gets invalidCredentials (49) from ldapsearch's bind", async () => {
    const out = await tool("ldapsearch", { ...lease, token: `${lease.token.slice(0, -4)}AAAA` }, [
      "-b",
      "",
      "-s",
      "base",
    ]);
    expect(out.code).toBe(49);
    expect(out.stderr).toContain("Invalid credentials (49)");
  });

  it("ldapts with StartTLS, and a listener whose own leg to slapd is StartTLS with the CA checked", async () => {
    const secure = await h.checkout(SECURE);
    const c = viaProxy(`ldap://127.0.0.1:${listenerPort(proxy, SECURE)}`);
    try {
      await c.startTLS({ rejectUnauthorized: false });
      await c.bind(secure.leaseId, secure.token);
      const who = await c.exop("1.3.6.1.4.1.4203.1.11.3");
      expect(who.value).toBe(`dn:uid=${secure.account},${slapd.peopleDn}`);
    } finally {
      await c.unbind();
    }
  });
});

describe("the listener's own leg to slapd", () => {
  it("ldaps:// with the registration's CA: the session binds as the account", async () => {
    const l = await h.checkout(LDAPS);
    const c = viaProxy(`ldap://127.0.0.1:${listenerPort(proxy, LDAPS)}`);
    try {
      await c.bind(`cn=${l.leaseId}`, l.token);
      expect((await c.exop("1.3.6.1.4.1.4203.1.11.3")).value).toBe(`dn:uid=${l.account},${slapd.peopleDn}`);
    } finally {
      await c.unbind();
    }
  });

  it("a server certificate the registration does not trust: the bind gets unavailable (52), nothing is sent", async () => {
    // Registered while trusted; the CA is then dropped from the listener's view of it.
    const stored = await h.register({
      ...{ adapter: "ldap", importRotation: false, reveal: false, rotation: { terminateSessions: false } },
      admin: { username: slapd.rotator.dn, password: slapd.rotator.password },
      name: UNTRUSTED,
      connection: { url: slapd.ldapsUrl, accountDn: slapd.accountDnTemplate, tls: { ca: slapd.caPem } },
      accounts: [{ name: "px_l7", password: PASSWORDS.get("px_l7") }],
      proxy: { port: 0 },
    });
    const m = await h.manager();
    await m.sync([{ ...stored, connection: { url: slapd.ldapsUrl, accountDn: slapd.accountDnTemplate } }]);
    const l = await h.checkout(UNTRUSTED);
    const c = viaProxy(`ldap://127.0.0.1:${listenerPort(m, UNTRUSTED)}`);
    await expect(c.bind(`cn=${l.leaseId}`, l.token)).rejects.toMatchObject({ code: 52 });
    await c.unbind();
    await waitFor("the refused session's record", async () =>
      (await h.auditRecords()).some(
        (x) => x.scope === "proxy_session" && x.lease_id === l.leaseId && x.decision === "deny",
      ),
    );
    const rec = (await h.auditRecords()).find((x) => x.scope === "proxy_session" && x.lease_id === l.leaseId);
    expect(String(rec?.reason)).toMatch(/^52 tls: /);
  });
});

describe("MCP's ldap_search through the listener", () => {
  it("binds at the listener as cn=<lease id> with the token; password attributes never come back", async () => {
    const dn = `uid=${lease.account},${slapd.peopleDn}`;
    const got = await runLdapSearch(
      { kind: "proxy", host: "127.0.0.1", port, user: lease.leaseId, password: lease.token },
      { base: dn, scope: "base", filter: "(objectClass=*)", attributes: ["uid", "userPassword"], maxRows: 5 },
    );
    expect(got.entries).toEqual([{ dn, attributes: { uid: [lease.account] } }]);
    await expect(
      runLdapSearch(
        { kind: "proxy", host: "127.0.0.1", port, user: lease.leaseId, password: "not-the-token" },
        { base: dn, scope: "base", filter: "(objectClass=*)", attributes: [], maxRows: 5 },
      ),
    ).rejects.toThrow(/Invalid|49/i);
  });
});

describe("inside a bound LDAP session", () => {
  it("a second bind, to any DN, is refused with invalidCredentials and the session stays the lease's", async () => {
    const c = viaProxy();
    try {
      await c.bind(`cn=${lease.leaseId}`, lease.token);
      await expect(c.bind(slapd.admin.dn, slapd.admin.password)).rejects.toMatchObject({ code: 49 });
      await expect(c.bind(`cn=${lease.leaseId}`, lease.token)).rejects.toMatchObject({ code: 49 });
      const who = await c.exop("1.3.6.1.4.1.4203.1.11.3");
      expect(who.value).toBe(`dn:uid=${lease.account},${slapd.peopleDn}`);
    } finally {
      await c.unbind();
    }
  });

  it("StartTLS after the bind is refused; password changes never reach the server", async () => {
    const dn = `uid=${lease.account},${slapd.peopleDn}`;
    const c = viaProxy();
    try {
      await c.bind(`cn=${lease.leaseId}`, lease.token);
      await expect(c.exop("1.3.6.1.4.1.1466.20037")).rejects.toMatchObject({ code: 1 });
      await expect(c.exop("1.3.6.1.4.1.4203.1.11.1")).rejects.toMatchObject({ code: 50 });
      const change = new Change({
        operation: "replace",
        modification: new Attribute({ type: "userPassword;binary", values: ["chosen-by-agent-1"] }),
      });
      await expect(c.modify(dn, change)).rejects.toMatchObject({ code: 50 });
      const who = await c.exop("1.3.6.1.4.1.4203.1.11.3");
      expect(who.value).toBe(`dn:${dn}`);
    } finally {
      await c.unbind();
    }
    expect(await ldapLogin(slapd, lease.account, "chosen-by-agent-1")).toBe(false);
    const reasons = async () =>
      (await h.auditRecords())
        .filter((x) => x.event === "decision" && x.tool === "ldap" && x.lease_id === lease.leaseId)
        .map((x) => String(x.reason));
    // Each refusal is a decision record naming its rule (earlier tests' second binds are there too):
    // the exop and the modify are two password refusals, and there is the late StartTLS.
    const matching = (got: string[], re: RegExp) => got.filter((r) => re.test(r)).length;
    await waitFor("the refusals' decision records", async () => {
      const got = await reasons();
      return matching(got, /^StartTLS after bind: /) === 1 && matching(got, /^password modify: /) === 2;
    });
    expect(await ldapLogin(slapd, lease.account, PASSWORDS.get(lease.account) ?? "")).toBe(true);
  });

  it("renaming, moving or deleting the account's entry (any spelling) or one above it is refused; others reach the server", async () => {
    const own = `uid=${lease.account},${slapd.peopleDn}`;
    const c = viaProxy();
    try {
      await c.bind(`cn=${lease.leaseId}`, lease.token);
      const refused = { code: 50, message: expect.stringContaining("cannot be renamed, moved or deleted") };
      await expect(c.modifyDN(own, "uid=renamed-by-agent")).rejects.toMatchObject(refused);
      await expect(
        c.modifyDN(`0.9.2342.19200300.100.1.1=${lease.account.toUpperCase()} , ${slapd.peopleDn}`, "uid=x"),
      ).rejects.toMatchObject(refused);
      await expect(c.modifyDN(slapd.peopleDn, "ou=Elsewhere")).rejects.toMatchObject(refused);
      await expect(c.del(own)).rejects.toMatchObject(refused);
      // An entry beside the account's is the server's to answer: it does not exist.
      await expect(c.del(`uid=nobody-${lease.leaseId},${slapd.peopleDn}`)).rejects.toMatchObject({
        code: 32,
      });
      const who = await c.exop("1.3.6.1.4.1.4203.1.11.3");
      expect(who.value).toBe(`dn:${own}`);
    } finally {
      await c.unbind();
    }
    expect(await ldapLogin(slapd, lease.account, PASSWORDS.get(lease.account) ?? "")).toBe(true);
    await waitFor("the renames' and the delete's decision records", async () => {
      const got = (await h.auditRecords())
        .filter((x) => x.event === "decision" && x.tool === "ldap" && x.lease_id === lease.leaseId)
        .map((x) => String(x.reason));
      return (
        got.filter((r) => r.startsWith("rename of the account's entry: ")).length === 3 &&
        got.filter((r) => r.startsWith("delete of the account's entry: ")).length === 1
      );
    });
  });

  it("a refused bind pipelined among searches is answered in order, between the server's messages", async () => {
    const dn = `uid=${lease.account},${slapd.peopleDn}`;
    const s = await rawConnect(port);
    s.write(simpleBindRequest(1, `cn=${lease.leaseId}`, lease.token));
    expect(replies(await readUntil(s, count(1)))[0]).toMatchObject({ id: 1, tag: 0x61, code: 0 });
    s.write(
      Buffer.concat([
        baseSearch(2, dn),
        simpleBindRequest(3, slapd.admin.dn, slapd.admin.password),
        baseSearch(4, dn),
      ]),
    );
    const got = replies(await readUntil(s, count(5))).map((r) => [r.id, r.tag, r.code]);
    s.destroy();
    // Answers to different requests may come in any order (RFC 4511 4.1.1.1); each is whole.
    expect([...got].sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([
      [2, 0x64, -1],
      [2, 0x65, 0],
      [3, 0x61, 49],
      [4, 0x64, -1],
      [4, 0x65, 0],
    ]);
  });
});

describe("LDAP listener refusals", () => {
  it("requests before the bind get operationsError; SASL gets authMethodNotSupported", async () => {
    const s = await rawConnect(port);
    s.write(extendedRequest(1, "1.3.6.1.4.1.4203.1.11.3"));
    const first = replies(await readUntil(s, count(1)));
    s.destroy();
    expect(first[0]).toMatchObject({ id: 1, tag: 0x78, code: 1 });
    expect(first[0]?.message).toContain("cn=<lease id>");
    const c = viaProxy();
    await expect(c.bind("EXTERNAL")).rejects.toMatchObject({ code: 7 });
    await c.unbind();
  });

  it("a token of another resource's lease gets invalidCredentials", async () => {
    const other = await h.checkout(SECURE);
    const c = viaProxy();
    await expect(c.bind(`cn=${other.leaseId}`, other.token)).rejects.toMatchObject({ code: 49 });
    await expect(c.bind("", "")).rejects.toMatchObject({ code: 49 });
    await c.unbind();
  });

  it("bytes that are not LDAP get a Notice of Disconnection (protocolError) and a closed connection", async () => {
    const s = await rawConnect(port);
    const done = readUntilClose(s);
    s.write(Buffer.from("GET / HTTP/1.1\r\n\r\n"));
    expect(replies(await done)[0]).toMatchObject({ id: 0, tag: 0x78, code: 2 });
  });

  it("an indefinite or oversized length is refused before its content is read", async () => {
    for (const head of ["3080", "3084ffffffff"]) {
      const s = await rawConnect(port);
      const done = readUntilClose(s);
      s.write(Buffer.from(head, "hex"));
      expect(replies(await done)[0]).toMatchObject({ id: 0, code: 2 });
    }
  });

  it("a client that never binds is closed with a Notice of Disconnection", async () => {
    const impatient = await h.manager({ handshakeTimeoutMs: 300 });
    const s = await rawConnect(listenerPort(impatient, RESOURCE));
    const got = replies(await readUntilClose(s))[0];
    expect(got).toMatchObject({ id: 0, tag: 0x78, code: 52 });
    expect(got?.message).toContain("in time");
  });
});

describe("LDAP listener refusals, continued", () => {
  it("after a wrong token the deadline still ends the connection with a Notice of Disconnection", async () => {
    const impatient = await h.manager({ handshakeTimeoutMs: 500 });
    const s = await rawConnect(listenerPort(impatient, RESOURCE));
    const closed = readUntilClose(s);
    s.write(simpleBindRequest(7, `cn=${lease.leaseId}`, "wrong-token"));
    const got = replies(await closed);
    expect(got.map((r) => [r.id, r.tag, r.code])).toEqual([
      [7, 0x61, 49],
      [0, 0x78, 52],
    ]);
  });

  it("the third wrong token closes the connection", async () => {
    const s = await rawConnect(port);
    const closed = readUntilClose(s);
    for (const id of [1, 2, 3]) s.write(simpleBindRequest(id, `cn=${lease.leaseId}`, `wrong-${id}`));
    const got = replies(await closed);
    expect(got.map((r) => [r.id, r.code])).toEqual([
      [1, 49],
      [2, 49],
      [3, 49],
    ]);
  });
});

describe("LDAP listener under abuse", () => {
  it("a session that keeps sending refused requests is closed after 32 of them", async () => {
    const s = await rawConnect(port);
    s.write(simpleBindRequest(1, `cn=${lease.leaseId}`, lease.token));
    expect(replies(await readUntil(s, count(1)))[0]).toMatchObject({ id: 1, code: 0 });
    const closed = readUntilClose(s);
    s.write(Buffer.concat(Array.from({ length: 40 }, (_, i) => simpleBindRequest(i + 2, "cn=x", "y"))));
    const got = replies(await closed);
    expect(got.filter((r) => r.code === 49).length).toBeGreaterThan(32);
    expect(got.at(-1)).toMatchObject({ id: 0, tag: 0x78, code: 53 });
  });

  it("a lease past proxy.maxConnectionsPerLease gets busy (51) naming the setting", async () => {
    const capped = await h.manager({ maxConnectionsPerLease: 1 });
    const p = listenerPort(capped, RESOURCE);
    const held = viaProxy(`ldap://127.0.0.1:${p}`);
    const extra = viaProxy(`ldap://127.0.0.1:${p}`);
    try {
      await held.bind(`cn=${lease.leaseId}`, lease.token);
      const err = await extra.bind(`cn=${lease.leaseId}`, lease.token).then(
        () => undefined,
        (e: { code?: number; message?: string }) => e,
      );
      expect(err?.code).toBe(51);
      expect(err?.message).toContain("proxy.maxConnectionsPerLease");
    } finally {
      await held.unbind();
      await extra.unbind().catch(() => undefined);
    }
  });
});

describe("the end of a lease ends its LDAP connections", () => {
  it("revocation closes the bound connection with a Notice of Disconnection and refuses the token", async () => {
    const l = await h.checkout(RESOURCE);
    const s = await rawConnect(port);
    s.write(simpleBindRequest(1, `cn=${l.leaseId}`, l.token));
    expect(replies(await readUntil(s, count(1)))[0]).toMatchObject({ id: 1, code: 0 });
    expect(proxy.connections(l.leaseId)).toBe(1);
    const closed = readUntilClose(s);
    await h.node.leaseService.revoke(l.leaseId, "test", "operator", { requestId: "req_revoke" });
    const notice = replies(await closed)[0];
    expect(notice).toMatchObject({ id: 0, tag: 0x78, code: 52 });
    expect(notice?.message).toContain("revoked");
    expect(proxy.connections(l.leaseId)).toBe(0);
    const c = viaProxy();
    await expect(c.bind(`cn=${l.leaseId}`, l.token)).rejects.toMatchObject({ code: 49 });
    await c.unbind();
  });
});

describe("audit of LDAP connections", () => {
  it("records the session with lease, account, client and bytes; no secret in audit or logs", async () => {
    const c = viaProxy();
    await c.bind(`cn=${lease.leaseId}`, lease.token);
    await c.search(`uid=${lease.account},${slapd.peopleDn}`, { scope: "base" });
    await c.unbind();
    let rec: Record<string, unknown> | undefined;
    await waitFor("the session record", async () => {
      rec = (await h.auditRecords()).find(
        (x) =>
          x.scope === "proxy_session" &&
          x.tool === "ldap" &&
          x.lease_id === lease.leaseId &&
          x.decision === "allow",
      );
      return rec !== undefined;
    });
    expect(rec).toMatchObject({ event: "tool_call", resource: RESOURCE, account: lease.account });
    expect(Number(rec?.bytes_in)).toBeGreaterThan(0);
    expect(Number(rec?.bytes_out)).toBeGreaterThan(0);
    const records = await h.auditRecords();
    expect(records.some((x) => x.scope === "proxy_connect" && x.lease_id === lease.leaseId)).toBe(true);
    await h.expectNoSecretLeaked();
  });
});
