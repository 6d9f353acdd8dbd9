import { type DestinationStream, type Logger, pino } from "pino";

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

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      base: { service: "leasehold" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

export type { Logger };
