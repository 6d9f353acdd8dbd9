import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdapterContext, AdapterError, type Credential } from "../../adapters/adapter.js";
import { type RedisAclTarget, redisAclAdapter, redisAclConfig } from "../../adapters/redis-acl/index.js";
import { startRedisServer, type TestRedisServer } from "../support/redis-server.js";
import { testPassword } from "./conformance.js";

// checkAccount on a private redis-server with admins of different ACL rules; errors naming it.

let server: TestRedisServer;
const run = randomBytes(3).toString("hex");
const users: string[] = [];
const lines: string[] = [];

beforeAll(async () => {
  server = await startRedisServer();
});

afterAll(async () => {
  await redisAclAdapter.close?.();
  for (const u of users) await server.deleteUser(u).catch(() => undefined);
  await server?.stop();
});

function target(): RedisAclTarget {
  return redisAclConfig.parse({ host: server.host, port: server.port });
}

function ctx(admin: Credential | undefined): AdapterContext {
  const push = (o: object, m?: string) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`);
  return { admin, log: { debug: push, info: push, warn: push, error: push }, timeoutMs: 10_000 };
}

/** An ACL user with exactly these rules (set through the `default` user). */
async function aclUser(suffix: string, rules: readonly string[]): Promise<Credential> {
  const username = `lhs${run}_${suffix}`;
  const password = testPassword();
  const root = await server.rootConnection();
  try {
    await root.call("ACL", "SETUSER", username, "reset", "on", `>${password}`, ...rules);
  } finally {
    root.disconnect();
  }
  users.push(username);
  return { username, password };
}

describe("redis-acl checkAccount", () => {
  let app: Credential;

  beforeAll(async () => {
    app = await aclUser("app", ["+ping"]);
  });

  it("the least-privilege admin: an existing user passes, a missing one fails in Redis's terms", async () => {
    expect(await redisAclAdapter.checkAccount?.(target(), app.username, ctx(server.admin))).toEqual({
      valid: true,
    });
    expect(
      await redisAclAdapter.checkAccount?.(target(), `lhs${run}_app_orders_9`, ctx(server.admin)),
    ).toEqual({
      valid: false,
      reason: `ACL user "lhs${run}_app_orders_9" does not exist (ACL GETUSER found none)`,
    });
  });

  it("an admin that may look users up but not change them fails, in Redis's own words (ACL DRYRUN)", async () => {
    const reader = await aclUser("reader", ["-@all", "+acl|getuser", "+acl|dryrun"]);
    const verdict = await redisAclAdapter.checkAccount?.(target(), app.username, ctx(reader));
    expect(verdict?.valid).toBe(false);
    expect(verdict?.valid === false ? verdict.reason : "").toMatch(
      /no permissions to run the 'acl\|setuser' command/,
    );
    // The user was looked at, not created or changed.
    const root = await server.rootConnection();
    try {
      expect(await root.call("ACL", "GETUSER", `lhs${run}_never`)).toBeNull();
    } finally {
      root.disconnect();
    }
  });

  it("an admin that may not even run ACL GETUSER fails", async () => {
    const blind = await aclUser("blind", ["-@all", "+acl|setuser"]);
    const verdict = await redisAclAdapter.checkAccount?.(target(), app.username, ctx(blind));
    expect(verdict?.valid).toBe(false);
    expect(verdict?.valid === false ? verdict.reason : "").toMatch(/may not run ACL GETUSER \(NOPERM\)/);
  });

  it("self mode fails: Redis has no command for a user to change only its own password", async () => {
    const verdict = await redisAclAdapter.checkAccount?.(target(), app.username, ctx(undefined));
    expect(verdict?.valid).toBe(false);
  });

  it("a wrong admin password: authentication failed for that user, at that address", async () => {
    const wrong = testPassword();
    const err = await redisAclAdapter
      .checkAccount?.(target(), app.username, ctx({ username: server.admin.username, password: wrong }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    const e = err as AdapterError;
    expect(e.code).toBe("auth_failed");
    expect(e.message).toBe(
      `redis-acl 127.0.0.1:${server.port}: AUTH as "${server.admin.username}": authentication failed (WRONGPASS)`,
    );
    expect(e.message).not.toContain(wrong);
  });
});
