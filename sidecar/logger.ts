import { type DestinationStream, type Logger, pino } from "pino";
import { prettyDestination } from "./logger-pretty.js";

/** Keys that may hold a secret anywhere in a log object; pino replaces their values. */
export const REDACT_PATHS = [
  "password",
  "*.password",
  "*.*.password",
  "current",
  "next",
  "previous",
  "pending_password",
  "previous_password",
  "*.pending_password",
  "*.previous_password",
  "token",
  "*.token",
  "secretId",
  "*.secretId",
  "authorization",
  "*.authorization",
  "req.headers.authorization",
  "req.headers.dpop",
  "req.headers.cookie",
  'req.headers["x-vault-token"]',
  "credential",
  "*.credential",
];

/** How the log is written. */
export interface LogOutput {
  /** Human-readable lines instead of JSON. @default true when writing to stdout and it is a terminal */
  readonly pretty?: boolean;
  /** Colour the level in pretty lines. @default true when writing to stdout and NO_COLOR is unset or empty */
  readonly color?: boolean;
}

/**
 * The sidecar's logger, to `destination` or stdout. By default pretty lines (logger-pretty.ts) when it writes to
 * stdout and stdout is a terminal, JSON otherwise. Either way the `redact` paths apply first: the pretty form is
 * drawn from the redacted JSON line, so it cannot show what redaction removed.
 */
export function createLogger(level: string, destination?: DestinationStream, output: LogOutput = {}): Logger {
  const toStdout = destination === undefined;
  const pretty = output.pretty ?? (toStdout && process.stdout.isTTY === true);
  const dest = pretty
    ? prettyDestination(destination ?? process.stdout, {
        color: output.color ?? (toStdout && !process.env.NO_COLOR),
      })
    : destination;
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      base: { service: "leasehold" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    dest,
  );
}

export type { Logger };
