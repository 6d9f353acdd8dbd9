import { escapeText as esc } from "../../util/escape.js";
import { leasesInOrder, type WatchEvent, type WatchLease, type WatchState } from "./watch-state.js";

export interface RenderOptions {
  /** Terminal columns (at least 80 is assumed; narrower screens get truncated rows). */
  readonly width: number;
  /** Terminal rows. */
  readonly height: number;
  /** Leases with less time left than this are highlighted. */
  readonly thresholdSeconds: number;
  /** ANSI colours. */
  readonly color: boolean;
  /** Connection state shown in the header ("live", "reconnecting ..."). */
  readonly status: string;
  /** The server's clock, ms. */
  readonly now: number;
  /** The selected lease's id: its row is marked `>` (and shown inverted with colour). */
  readonly selected?: string | undefined;
  /** The last line of the screen: the keys, a prompt, or the result of the last action. */
  readonly footer?: string | undefined;
}

/**
 * Whether to colour: never when stdout is not a terminal, nor when `NO_COLOR` is set to
 * anything but the empty string (https://no-color.org).
 */
export function colorWanted(env: Readonly<Record<string, string | undefined>>, isTTY: boolean): boolean {
  return isTTY && !env.NO_COLOR;
}

const RED = "\x1b[1;31m";
const YELLOW = "\x1b[33m";
const DIM = "\x1b[2m";
const INVERSE = "\x1b[7m";
const RESET = "\x1b[0m";

/** `m:ss` under an hour, else `h:mm:ss`; never negative. */
export function formatCountdown(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** `[####......]`: the share of the lease's life still ahead, `width` cells inside brackets. */
export function progressBar(fraction: number, width: number): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.round(f * width);
  return `[${"#".repeat(full)}${".".repeat(width - full)}]`;
}

/** Cuts `s` to `width` characters, keeping the end (agent ids differ at the end). */
function keepEnd(s: string, width: number): string {
  if (s.length <= width) return s;
  return width <= 2 ? s.slice(-width) : `..${s.slice(-(width - 2))}`;
}

function keepStart(s: string, width: number): string {
  if (s.length <= width) return s;
  return width <= 2 ? s.slice(0, width) : `${s.slice(0, width - 2)}..`;
}

function shortAgent(agent: string): string {
  return agent.replace(/^spiffe:\/\//, "");
}

function hms(ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 19)}Z`;
}

/** A lease id's full length (`lse_` and 22 characters). */
const LEASE_ID_WIDTH = 26;

/** Column widths that fill `width` (80 columns give the base widths). */
function columns(width: number) {
  const base = { lease: 12, resource: 9, account: 10, agent: 11, task: 7, intent: 6, left: 7, bar: 6 };
  // the mark, eight separating spaces, the columns and the bar's two brackets: 79 at base widths
  const used =
    1 +
    8 +
    base.lease +
    base.resource +
    base.account +
    base.agent +
    base.task +
    base.intent +
    base.left +
    base.bar +
    2;
  let extra = Math.max(0, width - used - 1);
  // Wider terminals show the whole lease id first, then give the rest to the text columns.
  const lease = base.lease + Math.min(extra, LEASE_ID_WIDTH - base.lease);
  extra -= lease - base.lease;
  const bar = base.bar + Math.min(extra, 4);
  extra -= bar - base.bar;
  const agent = base.agent + Math.floor(extra * 0.4);
  const task = base.task + Math.floor(extra * 0.25);
  const resource = base.resource + Math.floor(extra * 0.15);
  const account = base.account + Math.floor(extra * 0.2);
  return { ...base, lease, bar, agent, task, resource, account };
}

/** `s` escaped (data never drives the terminal), cut and padded to `w` columns. */
function pad(s: string, w: number, end = false): string {
  const text = esc(s);
  return end ? keepEnd(text, w).padEnd(w) : keepStart(text, w).padEnd(w);
}

/** One row of the table for a lease (no colour). */
function leaseRow(l: WatchLease, now: number, c: ReturnType<typeof columns>, mark: string): string {
  const life = Math.max(1, l.expiresAt - l.issuedAt);
  // Clock offset and latency must never show more time than the lease was given.
  const left = Math.min(l.expiresAt - now, life);
  return [
    mark,
    pad(l.id, c.lease),
    pad(l.resource, c.resource),
    pad(l.account, c.account),
    pad(shortAgent(l.agent), c.agent, true),
    pad(l.task.id, c.task),
    pad(l.intent.action, c.intent),
    (left <= 0 ? "due" : formatCountdown(left)).padStart(c.left),
    progressBar(left / life, c.bar),
  ].join(" ");
}

/**
 * The whole screen as lines no wider than `width`: a header, one row per active lease (soonest
 * expiry first, lease id first; those within the threshold marked `!` and, with colour, red; the
 * selected one marked `>` and, with colour, inverted, and always on screen), then the accounts
 * that are rotating or quarantined, then the latest rotation event, then `footer` on the last line.
 */
export function renderScreen(state: WatchState, o: RenderOptions): string[] {
  const width = Math.max(20, o.width);
  const height = Math.max(2, o.height);
  const c = columns(width);
  const leases = leasesInOrder(state);
  const accounts = [...state.accounts.values()].sort((a, b) =>
    `${a.resource}/${a.account}`.localeCompare(`${b.resource}/${b.account}`),
  );
  const clip = (s: string) => keepStart(s, width);
  const paint = (s: string, code: string) => (o.color && code ? `${code}${s}${RESET}` : s);
  const lines: string[] = [];
  const header = `leasehold  ${leases.length} active lease${leases.length === 1 ? "" : "s"}  ${hms(o.now)}  ${esc(o.status)}`;
  lines.push(clip(header));
  lines.push(
    clip(
      [
        " ",
        pad("LEASE", c.lease),
        pad("RESOURCE", c.resource),
        pad("ACCOUNT", c.account),
        pad("AGENT", c.agent),
        pad("TASK", c.task),
        pad("INTENT", c.intent),
        "LEFT".padStart(c.left),
        "EXPIRY",
      ].join(" "),
    ),
  );
  const footer = o.footer === undefined ? 0 : 1;
  const tail = accounts.length > 0 ? accounts.length + 2 : 0;
  const room = Math.max(1, height - 1 - footer - lines.length - tail - 2);
  // The rows shown: from the top, or scrolled just enough to keep the selected row in view.
  const fits = leases.length <= room ? leases.length : room - 1;
  const at = o.selected === undefined ? -1 : leases.findIndex((l) => l.id === o.selected);
  const from = Math.max(0, at - fits + 1);
  const shown = leases.slice(from, from + Math.max(fits, 1));
  if (leases.length === 0) lines.push(paint(clip("  (no active leases)"), DIM));
  for (const l of shown) {
    const hot = l.expiresAt - o.now <= o.thresholdSeconds * 1000;
    const selected = l.id === o.selected;
    const row = clip(leaseRow(l, o.now, c, selected ? ">" : hot ? "!" : " "));
    lines.push(paint(row, `${selected ? INVERSE : ""}${hot ? RED : ""}`));
  }
  const hidden = leases.length - shown.length;
  if (hidden > 0) lines.push(clip(`  ... and ${hidden} more`));
  if (accounts.length > 0) {
    lines.push("");
    lines.push(clip("ACCOUNTS NOT AVAILABLE"));
    for (const a of accounts) {
      const row = clip(
        `  ${pad(`${a.resource}/${a.account}`, 30)} ${pad(a.state === "quarantined" ? "QUARANTINED" : "rotating", 11)} ${esc(a.note)}`,
      );
      lines.push(a.state === "quarantined" ? paint(row, RED) : paint(row, YELLOW));
    }
  }
  const last = state.recent[0];
  if (last && lines.length < height - 1 - footer) {
    lines.push("");
    lines.push(paint(clip(`last: ${eventLine(last)}`), DIM));
  }
  const body = lines.slice(0, Math.max(1, height - 1 - footer));
  if (o.footer !== undefined) {
    while (body.length < height - 2) body.push("");
    body.push(clip(esc(o.footer)));
  }
  return body;
}

/** One line per event, for a stdout that is not a terminal (every field escaped). */
export function eventLine(e: WatchEvent): string {
  const parts = [e.time, e.type, e.resource];
  if (e.account) parts.push(e.account);
  if (e.lease_id) parts.push(`lease=${e.lease_id}`);
  if (e.agent) parts.push(`agent=${e.agent}`);
  if (e.reason) parts.push(`reason=${JSON.stringify(e.reason)}`);
  return esc(parts.join(" "));
}

/** One line per active lease (the snapshot, for a stdout that is not a terminal; escaped). */
export function leaseLine(l: WatchLease, now: number): string {
  return esc(
    [
      new Date(now).toISOString(),
      "active",
      l.resource,
      l.account,
      `lease=${l.id}`,
      `agent=${l.agent}`,
      `task=${JSON.stringify(l.task.id)}`,
      `intent=${l.intent.action}`,
      `expires=${new Date(l.expiresAt).toISOString()}`,
      `left=${formatCountdown(Math.min(l.expiresAt - now, l.expiresAt - l.issuedAt))}`,
    ].join(" "),
  );
}
