import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execAdapter, execEnv } from "../../sidecar/cli/commands/exec-env.js";
import { clientOptionsFromEnv, createClient, LeaseholdClientError } from "../../sidecar/client/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-client-env-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("client options from LEASEHOLD_* variables", () => {
  it("LEASEHOLD_ADDR names the sidecar (LEASEHOLD_URL is its alias); LEASEHOLD_AGENT_KEY the key", () => {
    expect(
      clientOptionsFromEnv({}, { LEASEHOLD_ADDR: "http://127.0.0.1:7733", LEASEHOLD_AGENT_KEY: "/k.jwk" }),
    ).toEqual({ url: "http://127.0.0.1:7733", keyFile: "/k.jwk" });
    expect(clientOptionsFromEnv({}, { LEASEHOLD_URL: "http://127.0.0.1:1" })).toEqual({
      url: "http://127.0.0.1:1",
    });
    expect(clientOptionsFromEnv({}, { LEASEHOLD_ADDR: "http://a:1", LEASEHOLD_URL: "http://b:1" }).url).toBe(
      "http://a:1",
    );
  });

  it("a unix: address or LEASEHOLD_SOCKET gives a socket path; given options win; empty counts as unset", () => {
    expect(clientOptionsFromEnv({}, { LEASEHOLD_ADDR: "unix:/run/lh.sock" })).toEqual({
      socketPath: "/run/lh.sock",
    });
    expect(clientOptionsFromEnv({}, { LEASEHOLD_SOCKET: "/run/lh.sock", LEASEHOLD_ADDR: " " })).toEqual({
      socketPath: "/run/lh.sock",
    });
    expect(
      clientOptionsFromEnv(
        { url: "http://given:1", keyFile: "given.jwk" },
        { LEASEHOLD_ADDR: "http://env:1", LEASEHOLD_AGENT_KEY: "env.jwk" },
      ),
    ).toEqual({ url: "http://given:1", keyFile: "given.jwk" });
  });
});

describe("every SDK failure is a LeaseholdClientError with a code", () => {
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(LeaseholdClientError);
      return (err as LeaseholdClientError).code;
    }
    return undefined;
  };

  it("missing or malformed options are invalid_options", () => {
    expect(code(() => createClient({ url: "", keyFile: "k" }))).toBe("invalid_options");
    expect(code(() => createClient({ url: "not a url", keyFile: "k" }))).toBe("invalid_options");
    expect(code(() => createClient({ url: "http://127.0.0.1:1" }))).toBe("invalid_options");
  });

  it("a key file that is not there is bad_key, naming the file", async () => {
    const keyFile = join(dir, "missing.key.jwk");
    const client = createClient({ url: "http://127.0.0.1:1", keyFile });
    const err = await client
      .checkout("orders-db", { task: { id: "T" }, intent: { action: "read" } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeaseholdClientError);
    expect((err as LeaseholdClientError).code).toBe("bad_key");
    expect((err as Error).message).toContain(keyFile);
  });
});

describe("leasehold exec's variables follow each target's conventions", () => {
  const login = { user: "app_1", password: "pw-secret", connection: {}, proxy: false };

  it("guesses the kind from the connection, else the tool or command", () => {
    expect(execAdapter(undefined, { host: "h", port: 5432, database: "d" }, [])).toBe("postgres");
    expect(execAdapter(undefined, { host: "h", port: 3306 }, [])).toBe("mysql");
    expect(execAdapter(undefined, { url: "ldap://h:389", accountDn: "uid={account},dc=x" }, [])).toBe("ldap");
    expect(execAdapter(undefined, {}, [undefined, "/usr/bin/redis-cli"])).toBe("redis");
    expect(execAdapter(undefined, { host: "h", port: 1 }, ["sh"])).toBeUndefined();
    expect(execAdapter("mysql", { host: "h", port: 5432, database: "d" }, [])).toBe("mysql");
  });

  it("MySQL, Redis and LDAP get their clients' variables", () => {
    const c = { host: "db", port: 3307 };
    expect(execEnv("mysql", { ...login, connection: c }, "lse_1", undefined)).toMatchObject({
      MYSQL_HOST: "db",
      MYSQL_TCP_PORT: "3307",
      USER: "app_1",
      MYSQL_PWD: "pw-secret",
    });
    const r = execEnv("redis", { ...login, connection: { host: "::1", port: 6380 } }, "lse_1", undefined);
    expect(r).toMatchObject({ REDISCLI_AUTH: "pw-secret", REDIS_USER: "app_1" });
    expect(r.REDIS_URL).toBe("redis://app_1:pw-secret@[::1]:6380");
    const l = execEnv(
      "ldap",
      { ...login, connection: { url: "ldap://h:389", accountDn: "uid={account},ou=svc,dc=x" } },
      "lse_1",
      undefined,
    );
    expect(l).toMatchObject({
      LDAPURI: "ldap://h:389",
      LDAPBINDDN: "uid=app_1,ou=svc,dc=x",
      LDAPBINDPW: "pw-secret",
    });
  });

  it("LDAP through a listener binds as cn=<lease id> at the listener's address", () => {
    const l = execEnv(
      "ldap",
      { host: "127.0.0.1", port: 10389, user: "lse_1", password: "tok", connection: {}, proxy: true },
      "lse_1",
      undefined,
    );
    expect(l).toMatchObject({ LDAPURI: "ldap://127.0.0.1:10389", LDAPBINDDN: "cn=lse_1", LDAPBINDPW: "tok" });
  });
});
