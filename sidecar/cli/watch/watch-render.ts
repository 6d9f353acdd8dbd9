import { escapeText as esc } from "../../util/escape.js";
import type { WatchEvent, WatchLease, WatchState } from "./watch-state.js";

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
}

const RED = "\x1b[1;31m";
const YELLOW = "\x1b[33m";
const DIM = "\x1b[2m";
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

/** Column widths that fill `width` (80 columns give the base widths). */
function columns(width: number) {
  const base = { resource: 10, account: 12, agent: 14, task: 10, intent: 6, left: 7, bar: 10 };
  // the mark, seven separating spaces, the columns and the bar's two brackets: 79 at base widths
  const used =
    1 + 7 + base.resource + base.account + base.agent + base.task + base.intent + base.left + base.bar + 2;
  const extra = Math.max(0, width - used - 1);
  const agent = base.agent + Math.floor(extra * 0.4);
  const task = base.task + Math.floor(extra * 0.25);
  const resource = base.resource + Math.floor(extra * 0.15);
  const account = base.account + Math.floor(extra * 0.2);
  return { ...base, agent, task, resource, account };
}

/** `s` escaped (data never drives the terminal), cut and padded to `w` columns. */
function pad(s: string, w: number, end = false): string {
  const text = esc(s);
  return end ? keepEnd(text, w).padEnd(w) : keepStart(text, w).padEnd(w);
}

/** One row of the table for a lease (no colour). */
function leaseRow(l: WatchLease, now: number, c: ReturnType<typeof columns>, hot: boolean): string {
  const life = Math.max(1, l.expiresAt - l.issuedAt);
  // Clock offset and latency must never show more time than the lease was given.
  const left = Math.min(l.expiresAt - now, life);
  return [
    hot ? "!" : " ",
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
 * expiry first; those within the threshold marked `!` and, with colour, red), then the accounts
 * that are rotating or quarantined, then the latest rotation event.
 */
export function renderScreen(state: WatchState, o: RenderOptions): string[] {
  const width = Math.max(20, o.width);
  const c = columns(width);
  const leases = [...state.leases.values()].sort((a, b) => a.expiresAt - b.expiresAt);
  const accounts = [...state.accounts.values()].sort((a, b) =>
    `${a.resource}/${a.account}`.localeCompare(`${b.resource}/${b.account}`),
  );
  const clip = (s: string) => keepStart(s, width);
  const paint = (s: string, code: string) => (o.color ? `${code}${s}${RESET}` : s);
  const lines: string[] = [];
  const header = `leasehold  ${leases.length} active lease${leases.length === 1 ? "" : "s"}  ${hms(o.now)}  ${esc(o.status)}`;
  lines.push(clip(header));
  lines.push(
    clip(
      [
        " ",
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
  const tail = accounts.length > 0 ? accounts.length + 2 : 0;
  const room = Math.max(1, o.height - lines.length - tail - 2);
  const shown = leases.length > room ? leases.slice(0, room - 1) : leases;
  if (leases.length === 0) lines.push(paint(clip("  (no active leases)"), o.color ? DIM : ""));
  for (const l of shown) {
    const hot = l.expiresAt - o.now <= o.thresholdSeconds * 1000;
    const row = clip(leaseRow(l, o.now, c, hot));
    lines.push(hot ? paint(row, RED) : row);
  }
  if (shown.length < leases.length) lines.push(clip(`  ... and ${leases.length - shown.length} more`));
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
  if (last && lines.length < o.height - 1) {
    lines.push("");
    lines.push(paint(clip(`last: ${eventLine(last)}`), o.color ? DIM : ""));
  }
  return lines.slice(0, Math.max(1, o.height - 1));
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
