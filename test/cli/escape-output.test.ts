import { describe, expect, it } from "vitest";
import { table } from "../../sidecar/cli/table.js";
import { eventLine, leaseLine, renderScreen } from "../../sidecar/cli/watch/watch-render.js";
import { WatchState } from "../../sidecar/cli/watch/watch-state.js";
import { hasRefusedChars } from "../../sidecar/util/text.js";

/**
 * What the CLI prints of stored data (possibly written before issue 16, or by an older sidecar)
 * never reaches the terminal raw: cursor movement, erase and an OSC 52 clipboard write are shown
 * as text.
 */

const INJECT = "T-1\u001b[1A\u001b[2K\u001b]52;c;ZXZpbA==\u0007\u202eevil\u0000";
/** Anything a terminal would act on, in any line of the output. */
const raw = (out: string) => out.split("\n").some(hasRefusedChars);

const lease = {
  id: "lse_abcdefghijkl",
  resource: "orders-db",
  account: `app\u001b[31m`,
  agent: `spiffe://example.org/agent/a\u202e`,
  task: { id: INJECT },
  intent: { action: "read\u009b2J" },
  state: "active",
  issued_at: "2030-01-01T12:00:00.000Z",
  expires_at: "2030-01-01T12:05:00.000Z",
};

describe("CLI output of hostile stored data", () => {
  it("table cells are escaped and the columns still line up on what is shown", () => {
    const out = table([
      ["TASK", "AGENT"],
      [INJECT, "a"],
    ]);
    expect(raw(out)).toBe(false);
    expect(out).toContain("T-1\\x1b[1A\\x1b[2K\\x1b]52;c;ZXZpbA==\\x07\\u202eevil\\x00");
    const [head, row] = out.split("\n");
    expect(head?.indexOf("AGENT")).toBe(row?.lastIndexOf("a"));
  });

  it("leases watch: the screen, the event lines and the snapshot lines show data escaped", () => {
    const state = new WatchState();
    const now = Date.parse("2030-01-01T12:01:00.000Z");
    state.applySnapshot({ now: new Date(now).toISOString(), leases: [lease], accounts: [], recent: [] }, now);
    const screen = renderScreen(state, {
      width: 200,
      height: 24,
      thresholdSeconds: 60,
      color: false,
      status: "live\u001b[2J",
      now,
    });
    expect(screen.length).toBeGreaterThan(2);
    for (const line of screen) expect(raw(line)).toBe(false);
    expect(screen.join("\n")).toContain("\\x1b");
    const [watched] = state.leases.values();
    if (!watched) throw new Error("the snapshot's lease is missing");
    expect(raw(leaseLine(watched, now))).toBe(false);
    const ev = eventLine({
      id: "1",
      time: "2030-01-01T12:01:00.000Z",
      type: "revoked",
      resource: "orders-db",
      agent: lease.agent,
      reason: INJECT,
    });
    expect(raw(ev)).toBe(false);
    expect(ev).toContain("\\u202e");
  });
});
