import { describe, expect, it } from "vitest";
import { registrationSchema } from "../../sidecar/resources/types.js";
import { registrationWarnings } from "../../sidecar/service/registration-warnings.js";

function ldapReg(connection: Record<string, unknown>, proxy = true) {
  const reg = registrationSchema.parse({
    name: "people",
    adapter: "ldap",
    connection,
    admin: { username: "cn=leasehold,dc=example,dc=org" },
    accounts: ["svc"],
    reveal: !proxy,
    ...(proxy ? { proxy: { port: 0 } } : {}),
  });
  return registrationWarnings(reg, connection);
}

const DN = "uid={account},ou=people,dc=example,dc=org";

describe("registration warnings for an LDAP listener", () => {
  it("an ldap:// url without startTls is named: the listener's bind carries the real password", () => {
    const w = ldapReg({ url: "ldap://ldap.example.org", accountDn: DN });
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/^registration\.connection\.startTls: not set and the url is ldap:\/\//);
    expect(w[0]).not.toContain("loopback");
    expect(ldapReg({ url: "ldap://127.0.0.1:389", accountDn: DN })[0]).toContain("the host is loopback");
  });

  it("ldaps://, startTls, or no listener: no warning", () => {
    expect(ldapReg({ url: "ldaps://ldap.example.org", accountDn: DN })).toEqual([]);
    expect(ldapReg({ url: "ldap://ldap.example.org", accountDn: DN, startTls: true })).toEqual([]);
    expect(ldapReg({ url: "ldap://ldap.example.org", accountDn: DN }, false)).toEqual([]);
  });
});

describe("registration warnings for a MySQL listener", () => {
  const mysqlReg = (connection: Record<string, unknown>) =>
    registrationWarnings(
      registrationSchema.parse({
        name: "orders-my",
        adapter: "mysql",
        connection,
        admin: { username: "root" },
        accounts: ["app"],
        reveal: false,
        proxy: { port: 0 },
      }),
      connection,
    );

  it("no connection.ssl: the listener's leg to the server is named as plaintext; with it, no warning", () => {
    const w = mysqlReg({ host: "db.example.org", port: 3306 });
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(
      /^registration\.connection\.ssl: not set, so the listener's connection to the server is plaintext/,
    );
    expect(mysqlReg({ host: "db.example.org", port: 3306, ssl: true })).toEqual([]);
  });
});
