import { readAdminToken } from "../../admin-token.js";
import type { Config } from "../../config.js";
import { escapeText, jsonSafe } from "../../util/escape.js";
import { sidecarTcpUrl } from "../http-client.js";
import { readSse } from "./sse-reader.js";
import { colorWanted, eventLine, leaseLine, renderScreen } from "./watch-render.js";
import { WatchKeys } from "./watch-keys.js";
import { leasesInOrder, type WatchEvent, WatchState } from "./watch-state.js";

/** Where the view is written: process.stdout, or anything shaped like it. */
export interface WatchOutput {
  write(chunk: string): boolean;
  readonly isTTY?: boolean | undefined;
  readonly columns?: number | undefined;
  readonly rows?: number | undefined;
  on?(event: "resize", listener: () => void): unknown;
  off?(event: "resize", listener: () => void): unknown;
}

/** Where keys come from: process.stdin, or anything shaped like it. */
export interface WatchInput {
  readonly isTTY?: boolean | undefined;
  setRawMode?(raw: boolean): unknown;
  on(event: "data", listener: (chunk: Buffer | string) => void): unknown;
  off(event: "data", listener: (chunk: Buffer | string) => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

export interface WatchOptions {
  /** The sidecar's base URL, e.g. http://127.0.0.1:7733. */
  readonly url: string;
  /** The admin token. */
  readonly token: string;
  readonly out: WatchOutput;
  /** Leases with less time left are highlighted. @default 60 */
  readonly thresholdSeconds?: number;
  /** Line mode prints JSON (one object per line) instead of text. @default false */
  readonly json?: boolean;
  /** Full-screen view; otherwise one line per event. @default out.isTTY, unless json or lines */
  readonly tty?: boolean;
  /** One line per lease of the snapshot, then one per event, even on a terminal. @default false */
  readonly lines?: boolean;
  /** ANSI colours in the full-screen view. @default colorWanted(env, out.isTTY) */
  readonly color?: boolean;
  /** Read for NO_COLOR. @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * The operator's keys (a terminal, put in raw mode while the view runs): up/down or k/j move
   * the selection, `r` asks to revoke the selected lease (y confirms), `q` or Ctrl-C quits.
   * Without it, or when it is not a terminal, the view only shows.
   */
  readonly input?: WatchInput;
  /** Revokes one lease by id (`leases revoke ID`'s call); rejects with the reason it failed. */
  readonly revoke?: (leaseId: string) => Promise<unknown>;
  /** Ends the watch (resolves). */
  readonly signal?: AbortSignal;
  /** A stream silent this long is reconnected, ms. @default 45000 (three heartbeats) */
  readonly stallMs?: number;
  /** Local clock. @default Date.now */
  readonly now?: () => number;
  /** Where reconnect notices go in line mode. @default process.stderr */
  readonly errors?: Pick<WatchOutput, "write">;
}

/** The sidecar's URL and admin token, as the other CLI commands find them. */
export async function watchTargetFromConfig(config: Config): Promise<{ url: string; token: string }> {
  return { url: sidecarTcpUrl(config), token: await readAdminToken(config.admin.tokenFile) };
}

/** A refusal that reconnecting cannot fix. */
class WatchRefused extends Error {}

const ENTER = "\x1b[?1049h\x1b[?25l";
const LEAVE = "\x1b[?25h\x1b[?1049l";

/**
 * `leasehold leases watch`: follows `/v1/leases/stream` (not polling). On a terminal, a full
 * screen redrawn on every event and once a second for the countdowns; otherwise one line per
 * lease of the snapshot, then one line per event. Reconnects (with a fresh snapshot) when the
 * stream drops; rejects when the token is refused; resolves when `signal` aborts.
 */
export async function watchCommand(o: WatchOptions): Promise<void> {
  const now = o.now ?? Date.now;
  const tty = o.tty ?? (o.out.isTTY === true && !o.json && !o.lines);
  const threshold = o.thresholdSeconds ?? 60;
  if (!Number.isFinite(threshold) || threshold < 0)
    throw new Error("--threshold: a number of seconds, 0 or more");
  const quit = new AbortController();
  const onAbort = () => quit.abort();
  if (o.signal?.aborted) quit.abort();
  o.signal?.addEventListener("abort", onAbort);
  const signal = quit.signal;
  const input = tty && o.input?.isTTY === true && o.input.setRawMode ? o.input : undefined;
  const state = new WatchState();
  let status = "connecting";
  const keys = input
    ? new WatchKeys({ state, revoke: o.revoke, changed: () => draw(), quit: () => quit.abort() })
    : undefined;
  const draw = () => {
    if (!tty || signal.aborted) return;
    const lines = renderScreen(state, {
      width: o.out.columns ?? 80,
      height: o.out.rows ?? 24,
      thresholdSeconds: threshold,
      color: o.color ?? colorWanted(o.env ?? process.env, o.out.isTTY === true),
      status,
      now: now() + state.offsetMs,
      selected: keys?.selected(),
      footer: keys?.footer,
    });
    o.out.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join("\n")}\x1b[J`);
  };
  const line = (text: string, obj: unknown) => {
    if (!tty) o.out.write(`${o.json ? jsonSafe(JSON.stringify(obj)) : text}\n`);
  };
  let timer: NodeJS.Timeout | undefined;
  if (tty) {
    o.out.write(ENTER);
    if (input && keys) {
      input.setRawMode?.(true);
      input.on("data", keys.onData);
      input.resume();
    }
    timer = setInterval(draw, 1000);
    o.out.on?.("resize", draw);
    draw();
  }
  try {
    let delay = 1000;
    while (!signal.aborted) {
      try {
        await follow({ ...o, signal }, state, {
          onSnapshot: (snap) => {
            status = "live";
            delay = 1000;
            if (!tty) {
              if (o.json) line("", { type: "snapshot", ...(snap as object) });
              else for (const l of leasesInOrder(state)) line(leaseLine(l, now() + state.offsetMs), l);
            }
            draw();
          },
          onEvent: (e) => {
            line(eventLine(e), e);
            draw();
          },
        });
        if (signal.aborted) break;
        status = "stream ended; reconnecting";
      } catch (err) {
        if (err instanceof WatchRefused) throw err;
        if (signal.aborted) break;
        status = `reconnecting: ${(err as Error).message}`;
        if (!tty) (o.errors ?? process.stderr).write(`leasehold: ${escapeText(status)}\n`);
      }
      draw();
      await new Promise<void>((r) => {
        const t = setTimeout(r, delay);
        signal.addEventListener("abort", () => {
          clearTimeout(t);
          r();
        });
      });
      delay = Math.min(delay * 2, 10_000);
    }
  } finally {
    clearInterval(timer);
    o.signal?.removeEventListener("abort", onAbort);
    if (tty) {
      o.out.off?.("resize", draw);
      if (input && keys) {
        input.off("data", keys.onData);
        input.setRawMode?.(false);
        input.pause();
      }
      o.out.write(LEAVE);
    }
  }
}

/** One connection: applies the snapshot and events to `state` until the stream ends. */
async function follow(
  o: WatchOptions,
  state: WatchState,
  on: { onSnapshot: (snap: unknown) => void; onEvent: (e: WatchEvent) => void },
): Promise<void> {
  const ac = new AbortController();
  const stop = () => ac.abort();
  o.signal?.addEventListener("abort", stop);
  let stall: NodeJS.Timeout | undefined;
  const alive = () => {
    clearTimeout(stall);
    stall = setTimeout(stop, o.stallMs ?? 45_000);
  };
  try {
    alive();
    const res = await fetch(`${o.url}/v1/leases/stream`, {
      headers: { authorization: `Bearer ${o.token}`, accept: "text/event-stream" },
      signal: ac.signal,
    });
    if (res.status === 401 || res.status === 403)
      throw new WatchRefused(`the sidecar refused the admin token (${res.status})`);
    if (!res.ok || !res.body) throw new Error(`the sidecar answered ${res.status}`);
    for await (const msg of readSse(res.body, alive)) {
      const data = JSON.parse(msg.data) as unknown;
      if (msg.event === "snapshot") {
        state.applySnapshot(data, (o.now ?? Date.now)());
        on.onSnapshot(data);
      } else if (msg.event === "message") {
        state.applyEvent(data as WatchEvent);
        on.onEvent(data as WatchEvent);
      } else if (msg.event === "error") {
        throw new Error((data as { message?: string }).message ?? "stream error");
      }
    }
  } catch (err) {
    if (ac.signal.aborted && !o.signal?.aborted) throw new Error("the stream went silent");
    if (!o.signal?.aborted) throw err;
  } finally {
    clearTimeout(stall);
    o.signal?.removeEventListener("abort", stop);
  }
}
