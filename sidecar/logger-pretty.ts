import type { DestinationStream } from "pino";
import { escapeText } from "./util/escape.js";

/** How a pretty line is drawn. */
export interface PrettyOptions {
  /** ANSI colour for the level. */
  readonly color: boolean;
}

const LEVELS: Record<number, { name: string; code: string }> = {
  10: { name: "TRACE", code: "\x1b[90m" },
  20: { name: "DEBUG", code: "\x1b[36m" },
  30: { name: "INFO", code: "\x1b[32m" },
  40: { name: "WARN", code: "\x1b[33m" },
  50: { name: "ERROR", code: "\x1b[31m" },
  60: { name: "FATAL", code: "\x1b[1;31m" },
};

/** Keys every line carries and the pretty form shows in its own place, or not at all. */
const SHOWN_APART = new Set(["level", "time", "msg", "pid", "hostname", "service", "err"]);

function value(v: unknown): string {
  if (typeof v === "string") return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/**
 * One JSON log line as pino wrote it (already redacted) turned into `HH:MM:SS.mmm LEVEL message
 * key=value ...`, with an `err`'s stack on the lines beneath. Works on the serialised line only,
 * so it can show nothing that redaction removed. A line that is not JSON is passed on as it was.
 */
export function prettyLine(line: string, o: PrettyOptions): string {
  let rec: Record<string, unknown>;
  try {
    const parsed = JSON.parse(line) as unknown;
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return line;
    rec = parsed as Record<string, unknown>;
  } catch {
    return line;
  }
  const lvl = LEVELS[Number(rec.level)] ?? { name: String(rec.level ?? "?").toUpperCase(), code: "" };
  const time = typeof rec.time === "string" ? rec.time.slice(11, 23) : new Date().toISOString().slice(11, 23);
  const name = lvl.name.padEnd(5);
  const parts = [time, name];
  if (typeof rec.msg === "string") parts.push(rec.msg);
  for (const [k, v] of Object.entries(rec)) if (!SHOWN_APART.has(k)) parts.push(`${k}=${value(v)}`);
  const escaped = parts.map(escapeText);
  if (o.color && lvl.code) escaped[1] = `${lvl.code}${escaped[1]}\x1b[0m`;
  let out = escaped.join(" ");
  const err = rec.err as { type?: unknown; message?: unknown; stack?: unknown } | undefined;
  if (err && typeof err === "object") {
    const stack = typeof err.stack === "string" ? err.stack : `${String(err.type)}: ${String(err.message)}`;
    out += `\n${stack
      .split("\n")
      .map((l) => `    ${escapeText(l)}`)
      .join("\n")}`;
  }
  return `${out}\n`;
}

/** A pino destination that writes each record as a pretty line to `out` (synchronously on a terminal). */
export function prettyDestination(
  out: { write(chunk: string): unknown },
  o: PrettyOptions,
): DestinationStream {
  return {
    write(line: string) {
      for (const l of line.split("\n")) if (l !== "") out.write(prettyLine(l, o));
    },
  };
}
