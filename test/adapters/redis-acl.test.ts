import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { type AdapterContext, AdapterError } from "../../adapters/adapter.js";
import {
  checkAclUserName,
  type RedisAclTarget,
  redisAclAdapter,
  redisAclConfig,
} from "../../adapters/redis-acl/index.js";
import { runConformanceFromFile } from "../../sidecar/cli/adapters-test/index.js";
import { freePort } from "../support/free-port.js";
import {
  REDIS_ACL_ADMIN_RULES,
  readAclFile,
  startRedisServer,
  type TestRedisServer,
} from "../support/redis-server.js";
import { adminSessionChecks } from "./admin-session-checks.js";
import { adapterConformance, testPassword } from "./conformance.js";
import { withSilentServer } from "../support/silent-server.js";

let server: TestRedisServer;

beforeAll(async () => {
  server = await startRedisServer();
});

afterAll(async () => {
  await server?.stop();
});

function target(extra: Partial<RedisAclTarget> = {}): RedisAclTarget {
  return redisAclConfig.parse({ host: server.host, port: server.port, ...extra });
}

adapterConformance({
  name: "redis-acl (least-privilege admin user)",
  adapter: redisAclAdapter,
  // Redis has no command for a user to change only its own password.
  selfRotation: false,
  async setup() {
    const closedPort = await freePort();
    return {
      target: target(),
      admin: server.admin,
      createAccount: (name, password) => server.addUser(name, password),
      dropAccount: (name) => server.deleteUser(name),
      unreachableTarget: redisAclConfig.parse({ host: "127.0.0.1", port: closedPort }),
      unreachableAddress: `127.0.0.1:${closedPort}`,
      targetVia: (host, port) => redisAclConfig.parse({ host, port: port ?? server.port }),
      async openSession(name, password) {
        const r = new Redis({
          host: server.host,
          port: server.port,
          username: name,
          password,
          lazyConnect: true,
          retryStrategy: () => null,
          maxRetriesPerRequest: 0,
          enableOfflineQueue: false,
          enableReadyCheck: false,
        });
        r.on("error", () => undefined);
        await r.connect();
        return {
          async alive() {
            try {
              return (await r.ping()) === "PONG";
            } catch {
              return false;
            }
          },
          close: async () => r.disconnect(),
        };
      },
      teardown: async () => undefined,
    };
  },
});

adminSessionChecks({
  name: "redis-acl",
  adapter: redisAclAdapter,
  selfRotation: false,
  async setup() {
    const root = await server.rootConnection();
    const username = `lhr${randomBytes(3).toString("hex")}_admin`;
    const password = testPassword();
    await root.call("ACL", "SETUSER", username, "reset", "on", `>${password}`, ...REDIS_ACL_ADMIN_RULES);
    return {
      target: target(),
      viaRelay: (port) => redisAclConfig.parse({ host: "127.0.0.1", port }),
      serverPort: server.port,
      admin: { username, password },
      createAccount: (name, pw) => server.addUser(name, pw),
      dropAccount: (name) => server.deleteUser(name),
      async adminSessionIds() {
        const list = String(await root.call("CLIENT", "LIST"));
        return list
          .split("\n")
          .filter((line) => line.includes(` user=${username} `))
          .map((line) => /(?:^|\s)id=(\d+)/.exec(line)?.[1] ?? "?");
      },
      async killSession(id) {
        await root.call("CLIENT", "KILL", "ID", id);
      },
      async setAdminPassword(pw) {
        await root.call("ACL", "SETUSER", username, "resetpass", `>${pw}`);
      },
      async teardown() {
        await root.call("ACL", "DELUSER", username);
        root.disconnect();
      },
    };
  },
});

describe("redis-acl adapter specifics", () => {
  const run = randomBytes(3).toString("hex");
  const users: string[] = [];
  const lines: string[] = [];
  const secrets: string[] = [];
  const pw = (): string => {
    const p = testPassword();
    secrets.push(p);
    return p;
  };
  const log = {
    debug: (o: object, m?: string) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`),
    info: (o: object, m?: string) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`),
    warn: (o: object, m?: string) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`),
    error: (o: object, m?: string) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`),
  };
  /** `null` for no admin (self mode); the test server's least-privilege admin by default. */
  const ctx = (admin: { username: string; password: string } | null = server.admin): AdapterContext => ({
    admin: admin ?? undefined,
    log,
    timeoutMs: 10_000,
  });
  let root: Redis;

  async function user(name: string, password = pw()): Promise<{ name: string; password: string }> {
    await server.addUser(name, password);
    users.push(name);
    return { name, password };
  }
  async function isValid(name: string, password: string, t = target()): Promise<boolean> {
    return (await redisAclAdapter.verify(t, { username: name, password }, ctx())).valid;
  }
  async function getUser(name: string): Promise<unknown> {
    return root.call("ACL", "GETUSER", name);
  }

  beforeAll(async () => {
    root = await server.rootConnection();
  });
  afterAll(async () => {
    for (const name of users) await server.deleteUser(name).catch(() => undefined);
    root?.disconnect();
  });

  it("rotating a missing user fails and leaves no user behind (ACL SETUSER would have created one)", async () => {
    const name = `lhr${run}_ghost`;
    const err = await redisAclAdapter
      .rotate(target(), { account: name, next: pw() }, ctx())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe("invalid");
    expect((err as AdapterError).retryable).toBe(false);
    expect(await getUser(name)).toBeNull();
  });

  it("rotation changes only the password: flags, commands and keys stay as they were", async () => {
    const a = await user(`lhr${run}_perms`);
    await root.call("ACL", "SETUSER", a.name, "~app:*", "+get", "+set");
    const before = JSON.stringify(await getUser(a.name)).replace(/"passwords",\[[^\]]*\]/, "");
    const next = pw();
    await redisAclAdapter.rotate(target(), { account: a.name, next }, ctx());
    const after = JSON.stringify(await getUser(a.name)).replace(/"passwords",\[[^\]]*\]/, "");
    expect(after).toBe(before);
    expect(await isValid(a.name, next)).toBe(true);
  });

  it("resetpass removes every other password and nopass", async () => {
    const a = await user(`lhr${run}_multi`);
    const extra = pw();
    await root.call("ACL", "SETUSER", a.name, `>${extra}`, "nopass");
    expect(await isValid(a.name, pw())).toBe(true); // nopass: anything logs in
    const next = pw();
    await redisAclAdapter.rotate(target(), { account: a.name, current: a.password, next }, ctx());
    expect(await isValid(a.name, next)).toBe(true);
    expect(await isValid(a.name, extra)).toBe(false);
    expect(await isValid(a.name, a.password)).toBe(false);
    expect(await isValid(a.name, pw())).toBe(false);
  });

  it("self rotation is refused clearly, before connecting", async () => {
    const closed = redisAclConfig.parse({ host: "127.0.0.1", port: await freePort() });
    const err = await redisAclAdapter
      .rotate(closed, { account: "anyone", current: pw(), next: pw() }, ctx(null))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).retryable).toBe(false);
    expect((err as AdapterError).message).toMatch(/admin/);
  });

  it("an admin without ACL SETUSER gets a non-retryable privilege error", async () => {
    const weak = await user(`lhr${run}_weak`);
    await root.call("ACL", "SETUSER", weak.name, "+acl|getuser");
    const a = await user(`lhr${run}_target`);
    const err = await redisAclAdapter
      .rotate(
        target(),
        { account: a.name, next: pw() },
        ctx({ username: weak.name, password: weak.password }),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe("privilege");
    expect(await isValid(a.name, a.password)).toBe(true);
  });

  it("no password reaches the server's MONITOR stream", async () => {
    const a = await user(`lhr${run}_monitor`);
    const monitor = await root.monitor();
    const seen: string[] = [];
    monitor.on("monitor", (_time: string, args: string[]) => seen.push(args.join(" ")));
    try {
      const next = pw();
      await redisAclAdapter.rotate(target(), { account: a.name, current: a.password, next }, ctx());
      expect(await isValid(a.name, next)).toBe(true);
      await root.ping();
    } finally {
      monitor.disconnect();
    }
    expect(seen.length).toBeGreaterThan(0);
    const leaks = secrets.filter((s) => seen.some((line) => line.includes(s)));
    expect(leaks.length, `${leaks.length} password(s) seen by MONITOR`).toBe(0);
  });

  it("persist: aclfile saves the new password hash to the aclfile (ACL SAVE)", async () => {
    const filed = await startRedisServer({ aclFile: true });
    try {
      const t = redisAclConfig.parse({ host: filed.host, port: filed.port, persist: "aclfile" });
      const name = `lhr${run}_filed`;
      await filed.addUser(name, pw());
      const next = pw();
      await redisAclAdapter.rotate(t, { account: name, next }, { ...ctx(filed.admin) });
      const file = await readAclFile(filed);
      const hash = createHash("sha256").update(next).digest("hex");
      const line = file.split("\n").find((l) => l.startsWith(`user ${name} `));
      expect(line).toContain(` #${hash}`);
      expect(file).not.toContain(next);
    } finally {
      await filed.stop();
    }
  });

  it("persist: aclfile against a server without an aclfile is a non-retryable error", async () => {
    const a = await user(`lhr${run}_nofile`);
    const err = await redisAclAdapter
      .rotate(target({ persist: "aclfile" }), { account: a.name, next: pw() }, ctx())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).retryable).toBe(false);
  });

  it("terminateSessions: needs an admin; an unknown user has no sessions", async () => {
    const err = await redisAclAdapter
      .terminateSessions?.(target(), "anyone", ctx(null))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe("privilege");
    expect(await redisAclAdapter.terminateSessions?.(target(), `lhr${run}_nobody`, ctx())).toBe(0);
  });

  it("checkAccountName refuses what Redis or the aclfile cannot keep, accepts the rest", () => {
    for (const ok of [
      "app",
      "o'brien\\",
      "x'@'%",
      'quo"te',
      "semi;colon",
      ">looks-like-a-rule",
      "ünï-日本-😀",
    ]) {
      expect(checkAclUserName(ok), JSON.stringify(ok)).toBeNull();
    }
    for (const bad of [
      "",
      "a b",
      "tab\there",
      "new\nline",
      "nul\0",
      "nbsp\u00a0x",
      "x".repeat(257),
      "lone\udc00",
    ]) {
      expect(checkAclUserName(bad), JSON.stringify(bad)).not.toBeNull();
    }
  });

  it("a name that looks like an ACL rule is only ever a name", async () => {
    const a = await user(`>lhr${run}rule`);
    const next = pw();
    await redisAclAdapter.rotate(target(), { account: a.name, next }, ctx());
    expect(await isValid(a.name, next)).toBe(true);
    // Had the name been read as a rule, it would have added a password to some user instead.
    expect(await getUser(`lhr${run}rule`)).toBeNull();
  });

  it("the config schema applies defaults, refuses unknown keys and converts to JSON Schema", () => {
    expect(redisAclConfig.parse({ host: "cache" })).toEqual({ host: "cache", port: 6379, persist: "none" });
    expect(redisAclConfig.safeParse({ host: "cache", db: 1 }).success).toBe(false);
    expect(redisAclConfig.safeParse({ host: "cache", tls: { ca: "PEM" } }).success).toBe(true);
    expect(redisAclConfig.safeParse({ host: "cache", persist: "config" }).success).toBe(false);
    expect(JSON.stringify(z.toJSONSchema(redisAclConfig, { io: "input" }))).toContain("persist");
  });

  it("refuses new passwords outside the constraints before connecting", async () => {
    const closed = redisAclConfig.parse({ host: "127.0.0.1", port: await freePort() });
    for (const next of ["short", "x".repeat(257), `${testPassword()}é`, `${testPassword()}\n`]) {
      const err = await redisAclAdapter
        .rotate(closed, { account: "any", next }, ctx())
        .catch((e: unknown) => e);
      expect((err as AdapterError).code).toBe("invalid");
    }
  });

  it("a server that never answers gives a retryable timeout", async () => {
    await withSilentServer(async (port) => {
      const err = await redisAclAdapter
        .verify(
          redisAclConfig.parse({ host: "127.0.0.1", port }),
          { username: "x", password: "y" },
          {
            ...ctx(),
            timeoutMs: 300,
          },
        )
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AdapterError);
      expect((err as AdapterError).code).toBe("timeout");
      expect((err as AdapterError).retryable).toBe(true);
    });
  });

  it("logs no password", () => {
    expect(lines.length).toBeGreaterThan(0);
    const leaks = secrets.filter((s) => lines.some((l) => l.includes(s)));
    expect(leaks.length, `${leaks.length} password(s) in ${lines.length} lines`).toBe(0);
  });
});

describe("the conformance runner of `leasehold adapters test`, against redis-server", () => {
  it("passes redis-acl from a JSON target file (admin mode), ends sessions and restores passwords", async () => {
    const run = randomBytes(3).toString("hex");
    const given = [
      { name: `lhy${run}_a`, password: testPassword() },
      { name: `lhy${run}_b`, password: testPassword() },
    ];
    for (const a of given) await server.addUser(a.name, a.password);
    const dir = await mkdtemp(join(tmpdir(), "leasehold-target-"));
    try {
      const file = join(dir, "target.json");
      await writeFile(
        file,
        JSON.stringify({
          connection: { host: server.host, port: server.port },
          rotateWith: "admin",
          admin: server.admin,
          accounts: given,
          unreachable: { host: "127.0.0.1", port: await freePort() },
        }),
        { mode: 0o600 },
      );
      const report = await runConformanceFromFile(redisAclAdapter, file);
      expect(report.failed).toEqual([]);
      expect(report.passed).toContain("terminateSessions ends the account's open sessions and no others");
      expect(report.skipped.map((s) => s.check)).toContain(
        "self rotate: the account changes its own password",
      );
      expect(report.unrestored).toEqual([]);
      for (const a of given) {
        const verdict = await redisAclAdapter.verify(
          target(),
          { username: a.name, password: a.password },
          {
            log: {
              debug: () => undefined,
              info: () => undefined,
              warn: () => undefined,
              error: () => undefined,
            },
            timeoutMs: 5_000,
          },
        );
        expect(verdict.valid).toBe(true);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
      for (const a of given) await server.deleteUser(a.name).catch(() => undefined);
    }
  });
});
