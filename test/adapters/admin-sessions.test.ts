import { afterEach, describe, expect, it, vi } from "vitest";
import { AdapterError } from "../../adapters/adapter.js";
import {
  type AdminSessionDriver,
  AdminSessionPool,
  adminSessionKey,
  setSocketIdle,
} from "../../adapters/admin-sessions.js";

/**
 * A driver whose "connections" are plain objects: the pool's own logic, with no server. The
 * adapters' real connections are exercised by admin-session-checks.ts against real servers.
 */
class FakeConnection {
  static next = 1;
  readonly id = FakeConnection.next++;
  open = true;
  idle = false;
  busy = false;
  closed = false;
}

function fakeDriver(opts: { refuse?: boolean } = {}) {
  const opened: FakeConnection[] = [];
  const driver: AdminSessionDriver<FakeConnection> = {
    async open() {
      if (opts.refuse === true) throw new AdapterError("auth_failed", "fake: login refused", false);
      const c = new FakeConnection();
      opened.push(c);
      return c;
    },
    isOpen: (c) => c.open && !c.closed,
    close: (c) => {
      c.closed = true;
      c.open = false;
    },
    setIdle: (c, idle) => {
      c.idle = idle;
    },
  };
  return { driver, opened };
}

/** Work that marks its connection busy for a turn of the event loop, failing if it is shared. */
async function work(c: FakeConnection): Promise<number> {
  if (c.busy) throw new Error("connection shared by two calls at once");
  if (c.idle) throw new Error("connection used while marked idle");
  c.busy = true;
  await new Promise((resolve) => setImmediate(resolve));
  c.busy = false;
  return c.id;
}

const target = { host: "db.example", port: 5432, ssl: { ca: "PEM", rejectUnauthorized: true } };
const admin = { username: "rotator", password: "correct horse battery staple" };

afterEach(() => {
  vi.useRealTimers();
});

describe("adminSessionKey", () => {
  it("changes with the target, the admin user name and the admin password, never holding the password", () => {
    const key = adminSessionKey("postgres", target, admin);
    expect(key.startsWith("postgres:")).toBe(true);
    expect(key.includes(admin.password)).toBe(false);
    expect(key.includes(admin.username)).toBe(false);
    expect(adminSessionKey("postgres", { ...target }, { ...admin })).toBe(key);
    // Key order of the settings does not matter; their values do.
    expect(
      adminSessionKey(
        "postgres",
        { ssl: { rejectUnauthorized: true, ca: "PEM" }, port: 5432, host: "db.example" },
        admin,
      ),
    ).toBe(key);
    for (const other of [
      adminSessionKey("mysql", target, admin),
      adminSessionKey("postgres", { ...target, port: 5433 }, admin),
      adminSessionKey("postgres", { ...target, ssl: { ca: "OTHER", rejectUnauthorized: true } }, admin),
      adminSessionKey("postgres", target, { ...admin, username: "rotator2" }),
      adminSessionKey("postgres", target, { ...admin, password: `${admin.password}!` }),
    ]) {
      expect(other).not.toBe(key);
    }
  });
});

describe("AdminSessionPool", () => {
  const key = adminSessionKey("fake", target, admin);

  it("reuses the idle connection for the next call with the same key", async () => {
    const pool = new AdminSessionPool();
    const { driver, opened } = fakeDriver();
    const first = await pool.use(key, driver, work);
    const second = await pool.use(key, driver, work);
    expect(second).toBe(first);
    expect(opened).toHaveLength(1);
    expect(pool.stats("fake")).toEqual({ opened: 1, reused: 1, retried: 0 });
    expect(opened[0]?.idle).toBe(true);
    await pool.closeAll();
    expect(opened[0]?.closed).toBe(true);
  });

  it("never reuses across keys (another admin password is another key)", async () => {
    const pool = new AdminSessionPool();
    const { driver, opened } = fakeDriver();
    await pool.use(key, driver, work);
    await pool.use(adminSessionKey("fake", target, { ...admin, password: "other" }), driver, work);
    expect(opened).toHaveLength(2);
    // Opening with the new password closed the idle connection of the old one.
    expect(opened[0]?.closed).toBe(true);
    expect(pool.idleCount).toBe(1);
    await pool.closeAll();
  });

  it("two calls at once get two connections; one is kept idle, the other closed", async () => {
    const pool = new AdminSessionPool();
    const { driver, opened } = fakeDriver();
    await pool.use(key, driver, work);
    const ids = await Promise.all([pool.use(key, driver, work), pool.use(key, driver, work)]);
    expect(new Set(ids).size).toBe(2);
    expect(opened).toHaveLength(2);
    expect(opened.filter((c) => c.closed)).toHaveLength(1);
    expect(pool.idleCount).toBe(1);
    await pool.closeAll();
  });

  it("drops an idle connection seen closed, without counting a retry", async () => {
    const pool = new AdminSessionPool();
    const { driver, opened } = fakeDriver();
    await pool.use(key, driver, work);
    if (opened[0]) opened[0].open = false;
    await pool.use(key, driver, work);
    expect(opened).toHaveLength(2);
    expect(opened[0]?.closed).toBe(true);
    expect(pool.stats("fake")).toEqual({ opened: 2, reused: 0, retried: 0 });
    await pool.closeAll();
  });

  it("retries once on a new connection when a reused one turns out dead", async () => {
    const pool = new AdminSessionPool();
    const { driver, opened } = fakeDriver();
    await pool.use(key, driver, work);
    const calls: number[] = [];
    const result = await pool.use(key, driver, async (c) => {
      calls.push(c.id);
      if (calls.length === 1) {
        c.open = false;
        throw new AdapterError("unreachable", "fake: connection closed", true);
      }
      return work(c);
    });
    expect(calls).toEqual([opened[0]?.id, opened[1]?.id]);
    expect(result).toBe(opened[1]?.id);
    expect(opened[0]?.closed).toBe(true);
    expect(pool.stats("fake")).toEqual({ opened: 2, reused: 1, retried: 1 });
    await pool.closeAll();
  });

  it("does not retry a dead connection twice, nor a new connection at all", async () => {
    const pool = new AdminSessionPool();
    const { driver, opened } = fakeDriver();
    await pool.use(key, driver, work);
    let calls = 0;
    const err = await pool
      .use(key, driver, async () => {
        calls++;
        throw new AdapterError("unreachable", "fake: connection closed", true);
      })
      .catch((e: unknown) => e);
    expect((err as AdapterError).code).toBe("unreachable");
    expect(calls).toBe(2);
    expect(opened.every((c) => c.closed)).toBe(true);
    expect(pool.idleCount).toBe(0);
  });

  it("never retries a refusal, even on a reused connection; the connection is closed", async () => {
    for (const code of ["password_rejected", "privilege", "invalid", "auth_failed", "timeout"] as const) {
      const pool = new AdminSessionPool();
      const { driver, opened } = fakeDriver();
      await pool.use(key, driver, work);
      let calls = 0;
      const err = await pool
        .use(key, driver, async () => {
          calls++;
          throw new AdapterError(code, `fake: ${code}`, code === "timeout");
        })
        .catch((e: unknown) => e);
      expect((err as AdapterError).code).toBe(code);
      expect(calls).toBe(1);
      expect(opened).toHaveLength(1);
      expect(opened[0]?.closed).toBe(true);
      expect(pool.stats("fake").retried).toBe(0);
    }
  });

  it("a failed login is thrown as is, and keeps nothing", async () => {
    const pool = new AdminSessionPool();
    const { driver } = fakeDriver({ refuse: true });
    const err = await pool.use(key, driver, work).catch((e: unknown) => e);
    expect((err as AdapterError).code).toBe("auth_failed");
    expect(pool.idleCount).toBe(0);
  });

  it("closes a connection left idle for idleMs", async () => {
    vi.useFakeTimers();
    const pool = new AdminSessionPool({ idleMs: 1_000 });
    const { driver, opened } = fakeDriver();
    await pool.use(key, driver, async (c) => c.id);
    expect(pool.idleCount).toBe(1);
    vi.advanceTimersByTime(999);
    await pool.use(key, driver, async (c) => c.id);
    expect(opened).toHaveLength(1);
    // Each use restarts the idle time.
    vi.advanceTimersByTime(999);
    expect(pool.idleCount).toBe(1);
    vi.advanceTimersByTime(1);
    expect(pool.idleCount).toBe(0);
    expect(opened[0]?.closed).toBe(true);
  });

  it("does not reuse a connection older than maxAgeMs", async () => {
    let now = 0;
    const pool = new AdminSessionPool({ maxAgeMs: 60_000, now: () => now });
    const { driver, opened } = fakeDriver();
    await pool.use(key, driver, work);
    now = 59_999;
    await pool.use(key, driver, work);
    expect(opened).toHaveLength(1);
    now = 60_000;
    await pool.use(key, driver, work);
    expect(opened).toHaveLength(2);
    expect(opened[0]?.closed).toBe(true);
    await pool.closeAll();
  });

  it("closeAll closes idle connections, and those in use when their call ends", async () => {
    const pool = new AdminSessionPool();
    const { driver, opened } = fakeDriver();
    await pool.use(key, driver, work);
    const otherKey = adminSessionKey("fake", { ...target, port: 1 }, admin);
    let release: () => void = () => undefined;
    const inUse = pool.use(otherKey, driver, (c) => new Promise<number>((r) => (release = () => r(c.id))));
    await new Promise((resolve) => setImmediate(resolve));
    await pool.closeAll();
    expect(opened[0]?.closed).toBe(true);
    expect(opened[1]?.closed).toBe(false);
    release();
    await inUse;
    expect(opened[1]?.closed).toBe(true);
    expect(pool.idleCount).toBe(0);
    // The pool still works afterwards.
    await pool.use(key, driver, work);
    expect(pool.idleCount).toBe(1);
    await pool.closeAll();
  });

  it("closeAdapter closes only that adapter's connections, idle now or in use until their call ends", async () => {
    const pool = new AdminSessionPool();
    const { driver, opened } = fakeDriver();
    await pool.use(key, driver, work);
    await pool.use(adminSessionKey("other", target, admin), driver, work);
    let release: () => void = () => undefined;
    const otherKey = adminSessionKey("fake", { ...target, port: 1 }, admin);
    const inUse = pool.use(otherKey, driver, (c) => new Promise<number>((r) => (release = () => r(c.id))));
    await new Promise((resolve) => setImmediate(resolve));
    await pool.closeAdapter("fake");
    expect(opened.map((c) => c.closed)).toEqual([true, false, false]);
    release();
    await inUse;
    expect(opened.map((c) => c.closed)).toEqual([true, false, true]);
    expect(pool.idleCount).toBe(1);
    await pool.closeAll();
  });

  it("setSocketIdle unrefs and refs what has ref/unref, and ignores anything else", () => {
    const calls: string[] = [];
    const socket = { ref: () => calls.push("ref"), unref: () => calls.push("unref") };
    setSocketIdle(socket, true);
    setSocketIdle(socket, false);
    setSocketIdle(undefined, true);
    setSocketIdle({}, false);
    expect(calls).toEqual(["unref", "ref"]);
  });
});
