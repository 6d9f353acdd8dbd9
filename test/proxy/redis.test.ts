import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { encodeCommand } from "../../sidecar/proxy/redis/resp.js";
import { waitFor } from "../support/wait-for.js";
import { type Checkout, listenerPort, type ProxyHarness, startProxyHarness } from "./harness.js";
import { run, toolEnv } from "./processes.js";
import { type PrivateRedis, startPrivateRedis } from "./redis-server.js";
import { rawConnect, readUntil, readUntilClose } from "./wire.js";

const RESOURCE = "px-redis";
const OTHER = "px-redis-other";

let h: ProxyHarness;
let server: PrivateRedis;
let proxy: ProxyManager;
let port = 0;
let lease: Checkout;

function viaProxy(l: Checkout, password = l.token, p = port): Redis {
  const r = new Redis({
    host: "127.0.0.1",
    port: p,
    username: l.leaseId,
    password,
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
  });
  r.on("error", () => undefined);
  return r;
}

/** Tries to log in; returns every error ioredis reported (it reports AUTH failures as events). */
async function loginErrors(r: Redis): Promise<string> {
  const errors: string[] = [];
  r.on("error", (err: Error) => errors.push(err.message));
  await r.connect().then(
    () => errors.push("connected"),
    (err: Error) => errors.push(err.message),
  );
  r.disconnect();
  return errors.join("\n");
}

function cli(l: Checkout, args: readonly string[]) {
  return run(
    "redis-cli",
    ["-h", "127.0.0.1", "-p", String(port), "--user", l.leaseId, "--no-auth-warning", ...args],
    toolEnv({ REDISCLI_AUTH: l.token }),
  );
}

beforeAll(async () => {
  const adminPassword = randomBytes(18).toString("hex");
  const users = ["px_admin", "px_r1", "px_r2", "px_r3", "px_r4"].map(
    (u) => `${u} on >${u === "px_admin" ? adminPassword : randomBytes(12).toString("hex")} ~* &* +@all`,
  );
  // Assigned one by one, so afterAll stops whichever started even if the other failed.
  await Promise.all([
    startPrivateRedis(users).then((s) => {
      server = s;
    }),
    startProxyHarness({ name: "proxy-redis" }).then((x) => {
      h = x;
    }),
  ]);
  h.secrets.push(adminPassword);
  const base = {
    adapter: "redis-acl",
    connection: { host: server.host, port: server.port },
    admin: { username: "px_admin", password: adminPassword },
    reveal: false,
    rotation: { terminateSessions: false },
  };
  await h.register({ ...base, name: RESOURCE, accounts: ["px_r1", "px_r2", "px_r3"], proxy: { port: 0 } });
  await h.register({ ...base, name: OTHER, accounts: ["px_r4"] });
  proxy = await h.manager();
  port = listenerPort(proxy, RESOURCE);
  lease = await h.checkout(RESOURCE);
}, 120_000);

afterAll(async () => {
  await h?.close();
  await server?.stop();
});

describe("Redis listener with real clients", () => {
  it("ioredis logs in with AUTH <lease id> <lease token> and runs as the leased ACL user", async () => {
    expect(proxy.endpointFor(RESOURCE)).toEqual({ host: "127.0.0.1", port, protocol: "redis" });
    const r = viaProxy(lease);
    await r.connect();
    try {
      expect(await r.call("ACL", "WHOAMI")).toBe(lease.account);
      await r.set("px:key", "value-1");
      expect(await r.get("px:key")).toBe("value-1");
      const many = await Promise.all(Array.from({ length: 50 }, (_, i) => r.incrby("px:counter", i)));
      expect(many.at(-1)).toBe((49 * 50) / 2);
    } finally {
      r.disconnect();
    }
  });

  it("redis-cli logs in with --user <lease id> and the token as password", async () => {
    const set = await cli(lease, ["SET", "px:cli", "from-cli"]);
    expect(set.stdout.trim()).toBe("OK");
    const get = await cli(lease, ["GET", "px:cli"]);
    expect(get.stdout.trim()).toBe("from-cli");
    const who = await cli(lease, ["ACL", "WHOAMI"]);
    expect(who.stdout.trim()).toBe(lease.account);
  });

  it("HELLO 3 AUTH logs in and switches to RESP3", async () => {
    const s = await rawConnect(port);
    s.write(
      Buffer.concat([
        encodeCommand(["HELLO", "3", "AUTH", lease.leaseId, lease.token]),
        encodeCommand(["PING"]),
      ]),
    );
    const got = (await readUntil(s, (b) => b.toString().endsWith("+PONG\r\n"))).toString();
    s.destroy();
    expect(got.startsWith("%")).toBe(true);
    expect(got).toContain("proto");
  });

  it("a command pipelined behind AUTH (as redis-benchmark sends) is answered after it", async () => {
    const s = await rawConnect(port);
    s.write(Buffer.concat([encodeCommand(["AUTH", lease.leaseId, lease.token]), encodeCommand(["PING"])]));
    const got = (await readUntil(s, (b) => b.toString().includes("PONG"))).toString();
    s.destroy();
    expect(got).toBe("+OK\r\n+PONG\r\n");
  });

  it("commands before AUTH get NOAUTH; QUIT closes", async () => {
    const s = await rawConnect(port);
    const done = readUntilClose(s);
    s.write("PING\r\n");
    s.write(encodeCommand(["GET", "px:key"]));
    s.write(encodeCommand(["HELLO", "3"]));
    s.write("QUIT\r\n");
    const lines = (await done).toString().split("\r\n");
    expect(lines[0]).toMatch(/^-NOAUTH /);
    expect(lines[1]).toMatch(/^-NOAUTH /);
    expect(lines[2]).toMatch(/^-NOAUTH HELLO/);
    expect(lines[3]).toBe("+OK");
  });
});

describe("Redis listener refusals", () => {
  it("a wrong token gets WRONGPASS", async () => {
    const errors = await loginErrors(viaProxy(lease, `${lease.token.slice(0, -4)}AAAA`));
    expect(errors).toMatch(/WRONGPASS/);
    expect(errors).not.toContain("connected");
  });

  it("a token of another resource's lease gets WRONGPASS", async () => {
    const other = await h.checkout(OTHER);
    const s = await rawConnect(port);
    s.write(encodeCommand(["AUTH", other.leaseId, other.token]));
    const got = (await readUntil(s, (b) => b.includes("\r\n"))).toString();
    s.destroy();
    expect(got).toMatch(/^-WRONGPASS /);
  });

  it("AUTH with only a password gets WRONGPASS naming the form to use", async () => {
    const s = await rawConnect(port);
    s.write(encodeCommand(["AUTH", lease.token]));
    const got = (await readUntil(s, (b) => b.includes("\r\n"))).toString();
    s.destroy();
    expect(got).toMatch(/^-WRONGPASS .*AUTH <lease id> <lease token>/);
  });

  it("garbage gets -ERR Protocol error and a closed connection", async () => {
    const s = await rawConnect(port);
    const done = readUntilClose(s);
    s.write("*abc\r\n");
    expect((await done).toString()).toMatch(/^-ERR Protocol error/);
  });

  it("an oversized bulk gets -ERR Protocol error", async () => {
    const s = await rawConnect(port);
    const done = readUntilClose(s);
    s.write(`*3\r\n$4\r\nAUTH\r\n$${2 * 1024 * 1024}\r\n`);
    expect((await done).toString()).toMatch(/^-ERR Protocol error: invalid bulk length/);
  });

  it("a client that never logs in is closed with -ERR", async () => {
    const impatient = await h.manager({ handshakeTimeoutMs: 300 });
    const ep = impatient.endpointFor(RESOURCE);
    if (!ep) throw new Error("no listener");
    const s = await rawConnect(ep.port);
    expect((await readUntilClose(s)).toString()).toMatch(/^-ERR .*in time/);
  });
});

describe("Redis listener under abuse", () => {
  it("a lease past proxy.maxConnectionsPerLease gets ERR naming the setting; another lease does not", async () => {
    const capped = await h.manager({ maxConnectionsPerLease: 2 });
    const p = capped.endpointFor(RESOURCE)?.port;
    if (!p) throw new Error("no listener");
    const held = [viaProxy(lease, lease.token, p), viaProxy(lease, lease.token, p)];
    try {
      for (const r of held) await r.connect();
      expect(await held[1]?.ping()).toBe("PONG");
      expect(await loginErrors(viaProxy(lease, lease.token, p))).toContain("proxy.maxConnectionsPerLease");
      const other = await h.checkout(RESOURCE, { agent: "b" });
      const o = viaProxy(other, other.token, p);
      await o.connect();
      expect(await o.ping()).toBe("PONG");
      o.disconnect();
    } finally {
      for (const r of held) r.disconnect();
    }
  });

  it("when the handshake slots are full the oldest idle connection is closed for a real client", async () => {
    const small = await h.manager({ maxHandshakes: 1, handshakeTimeoutMs: 60_000 });
    const p = small.endpointFor(RESOURCE)?.port;
    if (!p) throw new Error("no listener");
    const idle = await rawConnect(p);
    const idleClosed = readUntilClose(idle);
    const r = viaProxy(lease, lease.token, p);
    try {
      await r.connect();
      expect(await r.ping()).toBe("PONG");
      expect((await idleClosed).toString()).toContain("too many connections are logging in");
    } finally {
      r.disconnect();
    }
  });
});

describe("the end of a lease ends its Redis connections", () => {
  it("revocation closes the open connection and refuses the token", async () => {
    const l = await h.checkout(RESOURCE);
    const r = viaProxy(l);
    const ended = new Promise<void>((resolve) => r.once("end", () => resolve()));
    await r.connect();
    expect(await r.ping()).toBe("PONG");
    expect(proxy.connections(l.leaseId)).toBe(1);
    await h.node.leaseService.revoke(l.leaseId, "test", "operator", { requestId: "req_revoke" });
    await ended;
    expect(proxy.connections(l.leaseId)).toBe(0);
    expect(await loginErrors(viaProxy(l))).toMatch(/WRONGPASS/);
  });
});

describe("audit of Redis connections", () => {
  it("records the session with lease, account, client and bytes; no secret anywhere", async () => {
    const r = viaProxy(lease);
    await r.connect();
    await r.set("px:audit", "x".repeat(1000));
    r.disconnect();
    let rec: Record<string, unknown> | undefined;
    await waitFor("the session record", async () => {
      rec = (await h.auditRecords()).find(
        (x) =>
          x.scope === "proxy_session" &&
          x.tool === "redis" &&
          x.lease_id === lease.leaseId &&
          Number(x.bytes_in) > 1000,
      );
      return rec !== undefined;
    });
    expect(rec).toMatchObject({
      event: "tool_call",
      resource: RESOURCE,
      account: lease.account,
      decision: "allow",
    });
    expect(String(rec?.target)).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(Number(rec?.bytes_out)).toBeGreaterThan(0);
    const audit = JSON.stringify(await h.auditRecords());
    const logs = h.logLines.join("");
    for (const s of h.secrets) {
      expect(audit.includes(s)).toBe(false);
      expect(logs.includes(s)).toBe(false);
    }
  });
});
