import { randomBytes } from "node:crypto";
import type {
  AdapterContext,
  AdapterError,
  AdapterLogger,
  Credential,
  PasswordConstraints,
} from "../../../adapters/adapter.js";
import { AdapterError as AdapterErrorClass } from "../../../adapters/adapter.js";

/** A conformance check's own failure: what the adapter did wrong. Messages never hold a password. */
export class CheckFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CheckFailed";
  }
}

/** Throws CheckFailed with `message` unless `condition` holds. */
export function ensure(condition: boolean, message: string): asserts condition {
  if (!condition) throw new CheckFailed(message);
}

/** A random test password of base64url characters that fits the adapter's constraints. */
export function testPassword(constraints?: PasswordConstraints): string {
  const min = constraints?.minLength ?? 24;
  const max = constraints?.maxLength ?? 64;
  const length = Math.min(Math.max(24, min), max);
  const forbidden = new Set(constraints?.forbidden ?? "");
  let out = "";
  while (out.length < length) {
    out += [...randomBytes(length).toString("base64url")].filter((ch) => !forbidden.has(ch)).join("");
  }
  return out.slice(0, length);
}

/** Errors may come from an adapter module with its own copy of adapter.ts: matched by shape too. */
export function isAdapterError(err: unknown): err is AdapterError {
  return (
    err instanceof AdapterErrorClass ||
    (err instanceof Error &&
      err.name === "AdapterError" &&
      "retryable" in err &&
      typeof err.retryable === "boolean" &&
      "code" in err &&
      typeof err.code === "string")
  );
}

/** Serialises a log object like a JSON logger would, including errors' messages, stacks and causes. */
export function render(value: unknown): string {
  const seen = new WeakSet<object>();
  try {
    return JSON.stringify(value, (_key, v: unknown) => {
      if (v instanceof Error) {
        return { ...v, name: v.name, message: v.message, stack: v.stack, cause: v.cause };
      }
      if (typeof v === "object" && v !== null) {
        if (seen.has(v)) return "[circular]";
        seen.add(v);
      }
      return typeof v === "bigint" ? v.toString() : v;
    });
  } catch {
    return String(value);
  }
}

/**
 * What the checks of one run share: captured log lines, every secret in play (for the
 * leak check), random passwords and call contexts.
 */
export class Recorder {
  readonly lines: string[] = [];
  readonly secrets: string[] = [];
  readonly log: AdapterLogger;

  constructor(
    private readonly constraints: PasswordConstraints,
    private readonly timeoutMs: number,
    private readonly admin: Credential | undefined,
  ) {
    const line = (level: string) => (obj: object, msg?: string) => {
      this.lines.push(`${level} ${render(obj)} ${msg ?? ""}`);
    };
    this.log = { debug: line("debug"), info: line("info"), warn: line("warn"), error: line("error") };
    // Short admin passwords would match by chance; the adapters' own are long.
    if (admin !== undefined && admin.password.length >= 8) this.secrets.push(admin.password);
  }

  /** A new random password within the adapter's constraints, remembered for the leak check. */
  secret(): string {
    const pw = testPassword(this.constraints);
    this.secrets.push(pw);
    return pw;
  }

  /** Remembers a password given from outside (a DBA's account) for the leak check. */
  remember(password: string): void {
    if (password.length >= 8) this.secrets.push(password);
  }

  record(line: string): void {
    this.lines.push(line);
  }

  adminCtx(admin?: Credential): AdapterContext {
    return { admin: admin ?? this.admin, log: this.log, timeoutMs: this.timeoutMs };
  }

  selfCtx(): AdapterContext {
    return { admin: undefined, log: this.log, timeoutMs: this.timeoutMs };
  }
}
