import { EventEmitter } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revokeLease } from "../../sidecar/cli/revoke-lease.js";
import { type WatchOutput, watchCommand } from "../../sidecar/cli/watch/index.js";
import type { WatchInput } from "../../sidecar/cli/watch/watch-command.js";
import {
  eventLine,
  formatCountdown,
  progressBar,
  renderScreen,
} from "../../sidecar/cli/watch/watch-render.js";
import { WatchState } from "../../sidecar/cli/watch/watch-state.js";
import { waitFor } from "../support/wait-for.js";
import { makeLease, type OpsHarness, startOpsHarness } from "./ops-harness.js";

/** ANSI control sequences (built from a string: a regex literal with ESC trips the linter). */
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, "g");

function snapshotWith(now: number) {
  const lease = (id: string, resource: string, account: string, agent: string, ttl: number) => ({
    id,
    resource,
    account,
    agent,
    task: { id: `TICKET-${id.slice(-2)}` },
    intent: { action: "read" },
    state: "active",
    issued_at: new Date(now - 60_000).toISOString(),
    expires_at: new Date(now + ttl).toISOString(),
  });
  return {
    now: new Date(now).toISOString(),
    after_id: "0-0",
    leases: [
      lease(
        "lse_aaaaaaaaaa01",
        "orders-db",
        "app_orders_1",
        "spiffe://example.org/agent/reporting-bot-7",
        600_000,
      ),
      lease(
        "lse_aaaaaaaaaa02",
        "a-very-long-resource-name",
        "a_long_account_name_here",
        "spiffe://x/agent/b",
        30_000,
      ),
    ],
    approvals: [],
    resources: [
      {
        name: "orders-db",
        adapter: "postgres",
        accounts: [
          { name: "app_orders_1", state: "leased" },
          { name: "app_orders_2", state: "quarantined", failures: 5 },
          { name: "app_orders_3", state: "available" },
        ],
      },
    ],
    recent: [],
  };
}

describe("the watch screen", () => {
  const now = Date.parse("2030-01-01T12:00:00Z");
  const plain80 = { width: 80, height: 24, thresholdSeconds: 60, color: false, status: "live" } as const;

  it("fits 80 columns: one row per lease, soonest first, the one near expiry marked", () => {
    const s = new WatchState();
    s.applySnapshot(snapshotWith(now), now);
    const lines = renderScreen(s, { ...plain80, now });
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(80);
    const rows = lines.filter((l) => l.includes("lse_"));
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(/^! lse_aaaaaa\.\. a-very-/);
    expect(rows[0]).toContain("0:30");
    expect(rows[1]).toMatch(
      /^ {2}lse_aaaaaa\.\. orders-db +app_orde\.\. +\.\.ing-bot-7 +TICKE\.\. +read +10:00 \[#+\.*\]$/,
    );
    expect(lines.join("\n")).toContain("ACCOUNTS NOT AVAILABLE");
    expect(lines.find((l) => l.includes("app_orders_2"))).toMatch(/QUARANTINED +5 failures/);
    expect(lines.some((l) => l.includes("app_orders_3"))).toBe(false);
  });

  it("never shows more time left than the lease was given (clock offset, latency)", () => {
    const s = new WatchState();
    const snap = snapshotWith(now);
    const fresh = {
      ...snap.leases[0],
      issued_at: new Date(now).toISOString(),
      expires_at: new Date(now + 300_000).toISOString(),
    };
    s.applySnapshot({ ...snap, leases: [fresh] }, now);
    // The local clock runs 800 ms behind the server's: 300.8 s would round up to 5:01.
    const lines = renderScreen(s, { ...plain80, now: now - 800 });
    const row = lines.find((l) => l.includes("orders-db"));
    expect(row).toContain(" 5:00 ");
    expect(row).not.toContain("5:01");
  });

  it("uses more room on wider terminals and colours hot rows red", () => {
    const s = new WatchState();
    s.applySnapshot(snapshotWith(now), now);
    const lines = renderScreen(s, {
      width: 140,
      height: 24,
      thresholdSeconds: 60,
      color: true,
      status: "live",
      now,
    });
    const hot = lines.find((l) => l.includes("TICKET-02"));
    expect(hot?.startsWith("\x1b[1;31m")).toBe(true);
    expect(lines.find((l) => l.includes("TICKET-01"))).toContain("agent/reporting-bot-7");
    expect(lines.find((l) => l.includes("TICKET-01"))).toContain("lse_aaaaaaaaaa01");
    for (const l of lines) expect(l.replace(ANSI, "").length).toBeLessThanOrEqual(140);
  });

  it("applies events: issued and renewed add, ended removes and shows the account rotating, rotated clears it", () => {
    const s = new WatchState();
    s.applySnapshot(snapshotWith(now), now);
    s.applyEvent({
      id: "1-0",
      time: new Date(now).toISOString(),
      type: "ended",
      resource: "orders-db",
      account: "app_orders_1",
      lease_id: "lse_aaaaaaaaaa01",
      reason: "checkin",
    });
    expect(s.leases.has("lse_aaaaaaaaaa01")).toBe(false);
    expect(s.accounts.get("orders-db/app_orders_1")).toMatchObject({
      state: "rotating",
      note: "after checkin",
    });
    s.applyEvent({ id: "2-0", time: "", type: "rotated", resource: "orders-db", account: "app_orders_1" });
    expect(s.accounts.has("orders-db/app_orders_1")).toBe(false);
    expect(s.recent[0]?.type).toBe("rotated");
    s.applyEvent({
      id: "3-0",
      time: "",
      type: "issued",
      resource: "orders-db",
      account: "app_orders_1",
      lease_id: "lse_new",
      lease: { ...snapshotWith(now).leases[0], id: "lse_new" },
    });
    expect(s.leases.has("lse_new")).toBe(true);
  });

  it("formats countdowns, bars and event lines", () => {
    expect(formatCountdown(61_000)).toBe("1:01");
    expect(formatCountdown(3_723_000)).toBe("1:02:03");
    expect(formatCountdown(-5)).toBe("0:00");
    expect(progressBar(0.5, 10)).toBe("[#####.....]");
    expect(progressBar(2, 4)).toBe("[####]");
    expect(
      eventLine({ id: "1-0", time: "T", type: "quarantined", resource: "r", account: "a", reason: "x y" }),
    ).toBe('T quarantined r a reason="x y"');
  });
});

/** A terminal-like sink: records what the view writes. */
class Capture implements WatchOutput {
  text = "";
  constructor(
    readonly isTTY: boolean,
    readonly columns = 80,
    readonly rows = 24,
  ) {}
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
  /** The last full frame drawn, without colours. */
  lastFrame(): string[] {
    const frames = this.text.split("\x1b[H");
    return (frames.at(-1) ?? "").replace(ANSI, "").split("\n");
  }
}

/** A terminal's input for the view: raw mode is recorded, keys are pushed by the test. */
class Keys extends EventEmitter implements WatchInput {
  readonly isTTY = true;
  raw = false;
  setRawMode(raw: boolean) {
    this.raw = raw;
  }
  resume() {}
  pause() {}
  press(keys: string) {
    this.emit("data", Buffer.from(keys));
  }
}

describe("leases watch against a running sidecar", () => {
  let h: OpsHarness;
  beforeAll(async () => {
    h = await startOpsHarness("watch");
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  const until = (probe: () => boolean, what: string) => waitFor(what, probe, { intervalMs: 25 });

  it("draws a lease row on a terminal and its countdown moves", async () => {
    const lease = await makeLease(h, "orders-db", "app_w1", "spiffe://example.org/agent/w", 300_000);
    const out = new Capture(true);
    const ac = new AbortController();
    const done = watchCommand({ url: h.url, token: h.adminToken, out, signal: ac.signal });
    try {
      await until(() => out.lastFrame().some((l) => l.includes("app_w1")), "the lease row");
      const row = () => out.lastFrame().find((l) => l.includes("app_w1")) ?? "";
      expect(row()).toMatch(/orders-db +app_w1 +.*agent\/w +TASK-7 +read +\d:\d\d \[#+\.*\]/);
      const left = () =>
        Number(
          / (\d+):(\d\d) \[/
            .exec(row())
            ?.slice(1, 3)
            .reduce((m, s) => m * 60 + Number(s), 0),
        );
      const first = left();
      await until(() => left() < first, "the countdown to move");
      expect(left()).toBeLessThan(first);
      expect(out.lastFrame()[0]).toMatch(/live/);

      await h.sidecar.leaseService.endLease("orders-db", lease.id, "revoked");
      await until(() => !out.lastFrame().some((l) => l.includes("TASK-7")), "the row to go");
      expect(out.lastFrame().join("\n")).toMatch(/orders-db\/app_w1 +rotating/);
    } finally {
      ac.abort();
      await done;
    }
    expect(out.text.endsWith("\x1b[?25h\x1b[?1049l")).toBe(true);
  });

  it("r on the selected lease asks, y revokes it through the admin API, q quits and restores the terminal", async () => {
    const lease = await makeLease(h, "orders-db", "app_w3", "spiffe://example.org/agent/w3", 300_000);
    const out = new Capture(true, 140, 30);
    const keys = new Keys();
    // The admin API call `leases revoke ID` makes, over plain fetch instead of the CLI's transport.
    const admin = {
      async request<T>(method: string, path: string, body?: unknown): Promise<T> {
        const res = await fetch(`${h.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${h.adminToken}`, "content-type": "application/json" },
          body: JSON.stringify(body ?? {}),
        });
        if (!res.ok) throw new Error(`answered ${res.status}`);
        return (await res.json()) as T;
      },
    };
    const done = watchCommand({
      url: h.url,
      token: h.adminToken,
      out,
      input: keys,
      revoke: (id) => revokeLease(admin, id),
      color: false,
    });
    const frame = () => out.lastFrame().join("\n");
    await until(() => frame().includes(lease.id), "the lease row");
    expect(keys.raw).toBe(true);
    expect(out.lastFrame().at(-1)).toContain("r revoke");
    // Select the lease's row, whatever other leases the file's earlier tests left.
    for (let i = 0; i < 10 && !out.lastFrame().some((l) => l.startsWith(">") && l.includes(lease.id)); i++)
      keys.press("j");
    expect(out.lastFrame().find((l) => l.startsWith(">"))).toContain(lease.id);
    keys.press("r");
    expect(out.lastFrame().at(-1)).toBe(
      `revoke lease ${lease.id} of orders-db/app_w3 (agent spiffe://example.org/agent/w3)? [y/N]`,
    );
    keys.press("n");
    expect(out.lastFrame().at(-1)).toBe(`not revoked: ${lease.id}`);
    keys.press("ry");
    await until(() => out.lastFrame().at(-1) === `revoked ${lease.id}`, "the revoke's result");
    await until(() => !out.lastFrame().slice(0, -1).join("\n").includes(lease.id), "the row to go");
    keys.press("q");
    await done;
    expect(keys.raw).toBe(false);
    expect(out.text.endsWith("\x1b[?25h\x1b[?1049l")).toBe(true);
  });

  it("prints one line per event when stdout is not a terminal", async () => {
    const out = new Capture(false);
    const ac = new AbortController();
    const done = watchCommand({ url: h.url, token: h.adminToken, out, signal: ac.signal });
    try {
      await makeLease(h, "billing-db", "app_w2", "spiffe://example.org/agent/w2", 300_000);
      await until(() => out.text.includes("issued billing-db app_w2"), "the issued line");
      expect(out.text).not.toContain("\x1b[");
      const line = out.text.split("\n").find((l) => l.includes("issued billing-db"));
      expect(line).toMatch(
        /^\d{4}-\d\d-\d\dT[\d:.]+Z issued billing-db app_w2 lease=lse_\S+ agent=spiffe:\/\/example.org\/agent\/w2$/,
      );
    } finally {
      ac.abort();
      await done;
    }
  });

  it("stops with an error when the token is refused", async () => {
    const out = new Capture(false);
    await expect(watchCommand({ url: h.url, token: "wrong", out })).rejects.toThrow(
      /refused the admin token/,
    );
  });
});
