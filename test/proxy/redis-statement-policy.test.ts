import { createHash, randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { encodeCommand } from "../../sidecar/proxy/redis/resp.js";
import { waitFor } from "../support/wait-for.js";
import { type Checkout, listenerPort, type ProxyHarness, startProxyHarness } from "./harness.js";
import { type PrivateRedis, startPrivateRedis } from "./redis-server.js";
import { rawConnect, readUntil } from "./wire.js";
import { refusalOf } from "../support/refusal.js";

const RESOURCE = "px-redis-pol";
const BLIND = "px-redis-blind";

/**
 * Intent read may run commands whose primary ACL category is `read` (or `connection`), never
 * on the key rp:hidden; intent write may read, write and use transactions. Nothing may script,
 * administer, or run what Redis calls dangerous.
 */
const POLICY = `@id("checkout")
permit (
  principal,
  action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"],
  resource
)
when { context.intent == "read" || context.intent == "write" };

@id("read-reads")
permit (principal, action == Action::"statement", resource)
when { context.intent == "read" && ["read", "connection"].contains(context.statement_kind) };

@id("write-reads-writes")
permit (principal, action == Action::"statement", resource)
when {
  context.intent == "write" &&
  ["read", "write", "connection", "transaction"].contains(context.statement_kind)
};

@id("hidden-key")
forbid (principal, action == Action::"statement", resource)
when { context.intent == "read" && context.keys.contains("rp:hidden") };

@id("no-object-freq")
forbid (principal, action == Action::"statement", resource)
when { context.command == "object|freq" };
`;

let h: ProxyHarness;
let server: PrivateRedis;
let admin: Redis;
let proxy: ProxyManager;
let port = 0;
let reader: Checkout;
let writer: Checkout;

function viaProxy(l: Checkout): Redis {
  const r = new Redis({
    host: "127.0.0.1",
    port,
    username: l.leaseId,
    password: l.token,
    lazyConnect: true,
    // Its ready check runs INFO, which Redis counts as dangerous: refused under this policy.
    enableReadyCheck: false,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
  });
  r.on("error", () => undefined);
  return r;
}

const refused = async (p: Promise<unknown>): Promise<string> => (await refusalOf(p)).message;

const digest = (args: string[]) => `sha256:${createHash("sha256").update(encodeCommand(args)).digest("hex")}`;

async function decisions(): Promise<Array<Record<string, unknown>>> {
  return (await h.auditRecords()).filter(
    (r) => r.event === "decision" && r.scope === "statement" && r.tool === "redis",
  );
}

beforeAll(async () => {
  const adminPassword = randomBytes(18).toString("hex");
  const users = ["rp_admin", "rp_a1", "rp_a2", "rp_a3"].map(
    (u) => `${u} on >${u === "rp_admin" ? adminPassword : randomBytes(12).toString("hex")} ~* &* +@all`,
  );
  // May not read the command table: statement policy cannot classify its commands.
  users.push(`rp_blind on >${randomBytes(12).toString("hex")} ~* &* +@all -command`);
  await Promise.all([
    startPrivateRedis(users).then((s) => {
      server = s;
    }),
    startProxyHarness({ name: "proxy-redis-pol", policy: POLICY }).then((x) => {
      h = x;
    }),
  ]);
  h.secrets.push(adminPassword);
  admin = new Redis({ host: server.host, port: server.port, username: "rp_admin", password: adminPassword });
  await admin.set("rp:kept", "v1");
  await admin.set("rp:hidden", "secret-value");
  await h.register({
    adapter: "redis-acl",
    connection: { host: server.host, port: server.port },
    admin: { username: "rp_admin", password: adminPassword },
    reveal: false,
    rotation: { terminateSessions: false },
    name: RESOURCE,
    accounts: ["rp_a1", "rp_a2", "rp_a3"],
    proxy: { port: 0, statementPolicy: true },
  });
  await h.register({
    adapter: "redis-acl",
    connection: { host: server.host, port: server.port },
    admin: { username: "rp_admin", password: adminPassword },
    reveal: false,
    rotation: { terminateSessions: false },
    name: BLIND,
    accounts: ["rp_blind"],
    proxy: { port: 0, statementPolicy: true },
  });
  proxy = await h.manager({ policy: h.node.policy });
  port = listenerPort(proxy, RESOURCE);
  reader = await h.checkout(RESOURCE, { intent: "read" });
  writer = await h.checkout(RESOURCE, { intent: "write" });
}, 120_000);

afterAll(async () => {
  admin?.disconnect();
  await h?.close();
  await server?.stop();
});

describe("statement policy on the Redis listener", () => {
  it("under intent read, GET works; SET, DEL, FLUSHALL, EVAL, CONFIG SET get NOPERM; keys intact", async () => {
    const r = viaProxy(reader);
    await r.connect();
    try {
      expect(await r.get("rp:kept")).toBe("v1");
      for (const [args, kind] of [
        [["SET", "rp:kept", "changed"], "write command set"],
        [["DEL", "rp:kept"], "write command del"],
        [["FLUSHALL"], "dangerous command flushall"],
        [["EVAL", "return redis.call('del', KEYS[1])", "1", "rp:kept"], "scripting command eval"],
        [["CONFIG", "SET", "maxmemory", "1"], "admin command config|set"],
      ] as const) {
        const [name, ...rest] = args;
        const message = await refused(r.call(name, ...rest));
        expect(message).toBe(`NOPERM leasehold: command refused by policy (${kind})`);
      }
      // The session goes on.
      expect(await r.ping()).toBe("PONG");
      expect(await r.get("rp:kept")).toBe("v1");
    } finally {
      r.disconnect();
    }
    expect(await admin.get("rp:kept")).toBe("v1");
    expect(await admin.config("GET", "maxmemory")).toEqual(["maxmemory", "0"]);
    await waitFor("the decision records", async () => (await decisions()).length >= 5 || undefined);
    const recs = await decisions();
    const set = recs.find((x) => x.digest === digest(["SET", "rp:kept", "changed"]));
    expect(set).toMatchObject({ decision: "deny", lease_id: reader.leaseId, intent: "read" });
    expect(String(set?.reason)).toMatch(/^NOPERM write command set: /);
    expect(recs.some((x) => x.digest === digest(["FLUSHALL"]))).toBe(true);
    // Keys and values are data: no record names them.
    const all = JSON.stringify(recs);
    expect(all).not.toContain("rp:kept");
    expect(all).not.toContain("changed");
  });

  it("under intent write, SET works and admin commands are still refused", async () => {
    const w = viaProxy(writer);
    await w.connect();
    try {
      expect(await w.set("rp:w", "1")).toBe("OK");
      expect(await w.get("rp:w")).toBe("1");
      expect(await refused(w.call("FLUSHDB"))).toMatch(/^NOPERM .*dangerous command flushdb/);
    } finally {
      w.disconnect();
    }
    expect(await admin.get("rp:w")).toBe("1");
  });

  it("decides each pipelined command on its own, answering in place", async () => {
    const r = viaProxy(reader);
    await r.connect();
    try {
      const res = await r.pipeline().get("rp:kept").set("rp:kept", "p").incr("rp:n").get("rp:kept").exec();
      expect(res?.map(([err, v]) => (err ? (err as Error).message.split(" ")[0] : v))).toEqual([
        "v1",
        "NOPERM",
        "NOPERM",
        "v1",
      ]);
    } finally {
      r.disconnect();
    }
  });

  it("a refused command queued in MULTI fails the transaction (EXECABORT), as a queue-time error does", async () => {
    const w = viaProxy(writer);
    await w.connect();
    try {
      const res = await w
        .multi()
        .set("rp:tx", "1")
        .flushall()
        .exec()
        .catch((e: Error) => e);
      expect(res).toBeInstanceOf(Error);
      expect((res as Error).message).toMatch(/EXECABORT/);
      expect(await admin.exists("rp:tx")).toBe(0);
      const ok = await w.multi().set("rp:tx", "2").get("rp:tx").exec();
      expect(ok?.map(([, v]) => v)).toEqual(["OK", "2"]);
    } finally {
      w.disconnect();
    }
  });

  it("the keys and the command name reach policy (keys, command)", async () => {
    const r = viaProxy(reader);
    await r.connect();
    try {
      expect(await refused(r.get("rp:hidden"))).toMatch(/^NOPERM .*read command get/);
      expect(await refused(r.mget("rp:kept", "rp:hidden"))).toMatch(/read command mget/);
      expect(await r.mget("rp:kept", "rp:none")).toEqual(["v1", null]);
      expect(await r.call("OBJECT", "ENCODING", "rp:kept")).toBe("embstr");
      expect(await refused(r.call("OBJECT", "FREQ", "rp:kept"))).toMatch(/read command object\|freq/);
    } finally {
      r.disconnect();
    }
  });

  it("an unknown command is unparseable: refused (proxy.unparseable: deny) and audited", async () => {
    const r = viaProxy(reader);
    await r.connect();
    try {
      expect(await refused(r.call("NOSUCHCMD", "a"))).toBe(
        "NOPERM leasehold: command refused by policy (unknown command)",
      );
      expect(await r.ping()).toBe("PONG");
    } finally {
      r.disconnect();
    }
    await waitFor("the unparseable record", async () =>
      (await decisions()).find((x) => x.digest === digest(["NOSUCHCMD", "a"])),
    );
  });

  it("RESP3 sessions and inline commands split in odd places are judged the same", async () => {
    const s = await rawConnect(port);
    const cmd = Buffer.concat([
      encodeCommand(["HELLO", "3", "AUTH", reader.leaseId, reader.token]),
      Buffer.from("SET rp:kept inline\r\n"),
      encodeCommand(["GET", "rp:kept"]),
    ]);
    for (let i = 0; i < cmd.length; i += 7) s.write(cmd.subarray(i, i + 7));
    const got = (await readUntil(s, (b) => b.toString().endsWith("$2\r\nv1\r\n"))).toString();
    s.destroy();
    expect(got).toContain("-NOPERM leasehold: command refused by policy (write command set)\r\n$2\r\nv1\r\n");
    expect(got).not.toContain("leasehold-refused");
  });

  it("without the server's command table (its first account may not run COMMAND) no login passes", async () => {
    // A manager of its own: the table is kept per backend, and this one has not read it yet.
    const fresh = await h.manager({ policy: h.node.policy });
    const l = await h.checkout(BLIND, { intent: "read" });
    const s = await rawConnect(listenerPort(fresh, BLIND));
    s.write(encodeCommand(["AUTH", l.leaseId, l.token]));
    const got = (await readUntil(s, (b) => b.includes("\r\n"))).toString();
    s.destroy();
    expect(got).toBe("-ERR the proxy cannot apply the resource's statement policy now\r\n");
  });

  it("no token or password appears in the logs or the audit trail", async () => {
    await h.expectNoSecretLeaked();
  });
});
