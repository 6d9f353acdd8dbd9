import { describe, expect, it } from "vitest";
import { keysOf, WatchKeys } from "../../sidecar/cli/watch/watch-keys.js";
import { waitFor } from "../support/wait-for.js";
import { colorWanted, leaseLine, renderScreen } from "../../sidecar/cli/watch/watch-render.js";
import { leasesInOrder, Selection, WatchState } from "../../sidecar/cli/watch/watch-state.js";

const now = Date.parse("2030-01-01T12:00:00Z");
const ESC = String.fromCharCode(27);

function lease(id: string, ttlMs: number, resource = "orders-db", account = `app_${id.slice(-1)}`) {
  return {
    id,
    resource,
    account,
    agent: "spiffe://example.org/agent/a",
    task: { id: "T-1" },
    intent: { action: "read" },
    state: "active",
    issued_at: new Date(now - 60_000).toISOString(),
    expires_at: new Date(now + ttlMs).toISOString(),
  };
}

function stateWith(...leases: ReturnType<typeof lease>[]): WatchState {
  const s = new WatchState();
  s.applySnapshot({ now: new Date(now).toISOString(), leases, resources: [], recent: [] }, now);
  return s;
}

const ids = (s: WatchState) => leasesInOrder(s).map((l) => l.id);
const base = { width: 80, height: 24, thresholdSeconds: 60, status: "live", now } as const;

describe("the watch screen's lease id column", () => {
  it("heads the table; 80 columns show the id's start, wide terminals the whole id", () => {
    const id = "lse_Q2xhdWRlV2F0Y2hUZXN0MQ";
    const s = stateWith(lease(id, 300_000));
    const narrow = renderScreen(s, { ...base, color: false });
    expect(narrow[1]).toMatch(/^ {2}LEASE +RESOURCE +ACCOUNT +AGENT +TASK +INTENT +LEFT +EXPIRY$/);
    const row = narrow.find((l) => l.includes("orders-db")) ?? "";
    expect(row).toMatch(/^ {2}lse_Q2xhdW\.\. orders-db /);
    for (const l of narrow) expect(l.length).toBeLessThan(80);
    const wide = renderScreen(s, { ...base, width: 120, color: false });
    expect(wide.find((l) => l.includes("orders-db"))).toContain(` ${id} `);
  });

  it("line mode names each lease by id", () => {
    const s = stateWith(lease("lse_one1", 300_000));
    const l = leasesInOrder(s)[0];
    expect(l && leaseLine(l, now)).toMatch(/ active orders-db app_1 lease=lse_one1 agent=/);
  });
});

describe("colour", () => {
  it("follows NO_COLOR (set and non-empty disables) and is off when stdout is not a terminal", () => {
    expect(colorWanted({}, true)).toBe(true);
    expect(colorWanted({ NO_COLOR: "" }, true)).toBe(true);
    expect(colorWanted({ NO_COLOR: "1" }, true)).toBe(false);
    expect(colorWanted({ NO_COLOR: "0" }, true)).toBe(false);
    expect(colorWanted({}, false)).toBe(false);
  });

  it("without colour the screen carries no escape sequence; the selected and hot rows are told by their mark", () => {
    const s = stateWith(lease("lse_hot1", 10_000), lease("lse_cold", 300_000));
    const lines = renderScreen(s, { ...base, color: false, selected: "lse_cold", footer: "q quit" });
    expect(lines.join("\n")).not.toContain(ESC);
    expect(lines.find((l) => l.includes("lse_hot1"))).toMatch(/^! /);
    expect(lines.find((l) => l.includes("lse_cold"))).toMatch(/^> /);
    const coloured = renderScreen(s, { ...base, color: true, selected: "lse_cold" });
    expect(coloured.find((l) => l.includes("lse_cold"))?.startsWith(`${ESC}[7m`)).toBe(true);
  });
});

describe("selection", () => {
  it("moves by rows, stops at the ends, and follows its lease when rows come and go", () => {
    const s = stateWith(lease("lse_a", 100_000), lease("lse_b", 200_000), lease("lse_c", 300_000));
    const sel = new Selection();
    expect(sel.resolve(ids(s))).toBe("lse_a");
    expect(sel.move(ids(s), -1)).toBe("lse_a");
    expect(sel.move(ids(s), 1)).toBe("lse_b");
    expect(sel.move(ids(s), 5)).toBe("lse_c");
    // A lease expiring sooner arrives above: the selection stays on lse_c.
    s.applyEvent({
      id: "1-0",
      time: "",
      type: "issued",
      resource: "orders-db",
      lease: lease("lse_0", 50_000),
    });
    expect(sel.resolve(ids(s))).toBe("lse_c");
    // The selected lease ends: the row that takes its place (here the last) is selected.
    s.applyEvent({ id: "2-0", time: "", type: "ended", resource: "orders-db", lease_id: "lse_c" });
    expect(sel.resolve(ids(s))).toBe("lse_b");
    s.leases.clear();
    expect(sel.resolve(ids(s))).toBeUndefined();
    expect(sel.move(ids(s), 1)).toBeUndefined();
  });

  it("keeps the selected row on screen when the leases outgrow it", () => {
    const many = Array.from({ length: 30 }, (_, i) =>
      lease(`lse_${String(i).padStart(2, "0")}`, 100_000 + i),
    );
    const s = stateWith(...many);
    const lines = renderScreen(s, { ...base, height: 12, color: false, selected: "lse_25", footer: "keys" });
    expect(lines).toHaveLength(11);
    expect(lines.find((l) => l.startsWith("> "))).toContain("lse_25");
    expect(lines.at(-1)).toBe("keys");
    expect(lines.some((l) => /\.\.\. and \d+ more/.test(l))).toBe(true);
  });

  it("splits terminal input into keys (arrows are one key)", () => {
    expect(keysOf(`j${ESC}[Ak${ESC}OBry`)).toEqual(["j", `${ESC}[A`, "k", `${ESC}OB`, "r", "y"]);
  });
});

describe("the keys", () => {
  it("r asks naming the lease id and resource, only y revokes, a failure is shown on the last line", async () => {
    const s = stateWith(lease("lse_a", 100_000), lease("lse_b", 200_000));
    const asked: string[] = [];
    let fail = false;
    let quits = 0;
    const keys = new WatchKeys({
      state: s,
      revoke: async (id) => {
        asked.push(id);
        if (fail) throw new Error("lease_not_found: no such lease");
      },
      changed: () => {},
      quit: () => quits++,
    });
    expect(keys.footer).toContain("r revoke");
    keys.onData("jr");
    expect(keys.footer).toBe(
      "revoke lease lse_b of orders-db/app_b (agent spiffe://example.org/agent/a)? [y/N]",
    );
    keys.onData("\r");
    expect(keys.footer).toBe("not revoked: lse_b");
    keys.onData("q");
    expect(quits).toBe(1);
    keys.onData("ry");
    await waitFor("the revoke's result", () => keys.footer === "revoked lse_b");
    fail = true;
    keys.onData("kry");
    await waitFor("the failure", () => keys.footer.startsWith("revoke lse_a failed"));
    expect(keys.footer).toBe("revoke lse_a failed: lease_not_found: no such lease");
    expect(asked).toEqual(["lse_b", "lse_a"]);
    // At the question, q is a "no", Ctrl-C still quits.
    keys.onData("rq");
    expect(keys.footer).toBe("not revoked: lse_a");
    keys.onData("r\x03");
    expect(quits).toBe(2);
    s.leases.clear();
    keys.onData("r");
    expect(keys.footer).toBe("no lease selected");
    expect(asked).toHaveLength(2);
  });

  it("without a revoke function r does nothing and only q is offered", () => {
    const keys = new WatchKeys({ state: stateWith(lease("lse_a", 1000)), changed: () => {}, quit: () => {} });
    keys.onData("ry");
    expect(keys.footer).toBe("q quit");
  });
});
