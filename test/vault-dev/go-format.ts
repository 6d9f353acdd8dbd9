/**
 * Value formats that Vault inherits from Go: timestamps, durations, and the weak
 * decoding its `framework` package applies to request fields. Kept in one place
 * so every handler renders them the same way.
 */

/** Why a field could not be decoded; handlers turn it into a 400. */
export class FieldError extends Error {}

/**
 * Go's `ptypes.TimestampString`: RFC 3339 UTC with trailing zeros of the fraction
 * trimmed (millisecond precision here; clients must accept any fraction length).
 */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.?0+Z$/, "Z");
}

const NS_PER = { ns: 1n, us: 1_000n, µs: 1_000n, μs: 1_000n, ms: 1_000_000n, s: 1_000_000_000n } as const;
const NS_PER_SECOND = 1_000_000_000n;

/** Go's `time.Duration.String()` for a duration given in (possibly fractional) seconds. */
export function formatGoDuration(seconds: number): string {
  let ns = BigInt(Math.round(seconds * 1e9));
  if (ns === 0n) return "0s";
  const sign = ns < 0n ? "-" : "";
  if (ns < 0n) ns = -ns;
  if (ns < NS_PER_SECOND) {
    if (ns < NS_PER.us) return `${sign}${ns}ns`;
    if (ns < NS_PER.ms) return `${sign}${fraction(ns, NS_PER.us)}µs`;
    return `${sign}${fraction(ns, NS_PER.ms)}ms`;
  }
  const hours = ns / (3600n * NS_PER_SECOND);
  ns -= hours * 3600n * NS_PER_SECOND;
  const minutes = ns / (60n * NS_PER_SECOND);
  ns -= minutes * 60n * NS_PER_SECOND;
  const secs = fraction(ns, NS_PER_SECOND);
  if (hours > 0n) return `${sign}${hours}h${minutes}m${secs}s`;
  if (minutes > 0n) return `${sign}${minutes}m${secs}s`;
  return `${sign}${secs}s`;
}

function fraction(value: bigint, unit: bigint): string {
  const whole = value / unit;
  const rest = value % unit;
  if (rest === 0n) return whole.toString();
  const digits = unit.toString().length - 1;
  return `${whole}.${rest.toString().padStart(digits, "0").replace(/0+$/, "")}`;
}

const UNIT_SECONDS: Record<string, number> = {
  ns: 1e-9,
  us: 1e-6,
  µs: 1e-6,
  μs: 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
};

/**
 * `parseutil.ParseDurationSecond`: an integer (number or numeric string) means
 * seconds, otherwise a Go duration string such as `"1h30m"` (Vault also accepts `d`).
 * Returns seconds; throws {@link FieldError} for anything else.
 */
export function parseDurationSeconds(value: unknown): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new FieldError(`invalid duration ${value}`);
    return Math.trunc(value);
  }
  if (typeof value !== "string") throw new FieldError(`invalid duration ${JSON.stringify(value)}`);
  const text = value.trim();
  if (text === "") return 0;
  if (/^[-+]?\d+$/.test(text)) return Number.parseInt(text, 10);
  const match = /^([-+]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h|d))+$/.test(text);
  if (!match) throw new FieldError(`time: invalid duration "${text}"`);
  const negative = text.startsWith("-");
  let total = 0;
  for (const part of text.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)/g)) {
    const [, amount, unit] = part;
    total += Number(amount) * (UNIT_SECONDS[unit ?? "s"] ?? 1);
  }
  return negative ? -total : total;
}

/** Go `strconv.ParseBool`; `undefined` when the text is not a boolean. */
export function parseGoBool(text: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(text)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(text)) return false;
  return undefined;
}

/** `mapstructure.WeakDecode` into an int (what `framework.TypeInt` does). */
export function weakInt(value: unknown, field: string): number {
  if (typeof value === "number" && Number.isFinite(value)) return Math.trunc(value);
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "string") {
    if (value === "") return 0;
    if (/^[-+]?\d+$/.test(value.trim())) return Number.parseInt(value, 10);
  }
  throw new FieldError(`error converting input ${JSON.stringify(value)} for field "${field}"`);
}

/** `mapstructure.WeakDecode` into a bool (what `framework.TypeBool` does). */
export function weakBool(value: unknown, field: string): boolean {
  if (typeof value === "boolean") return value;
  if (typeof value === "number") return value !== 0;
  if (typeof value === "string") {
    if (value === "") return false;
    const parsed = parseGoBool(value);
    if (parsed !== undefined) return parsed;
  }
  throw new FieldError(`error converting input ${JSON.stringify(value)} for field "${field}"`);
}

/** `mapstructure.WeakDecode` into a string (custom_metadata values, policies). */
export function weakString(value: unknown, field: string): string {
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  if (typeof value === "boolean") return value ? "1" : "0";
  if (value === null || value === undefined) return "";
  throw new FieldError(`error converting input ${JSON.stringify(value)} for field "${field}"`);
}

/** `framework.TypeCommaStringSlice`: an array, or a comma-separated string. */
export function commaStrings(value: unknown, field: string): string[] {
  if (value === null || value === undefined) return [];
  const items = Array.isArray(value) ? value : typeof value === "string" ? value.split(",") : [value];
  return items.map((item) => weakString(item, field).trim()).filter((item) => item !== "");
}

/** `framework.TypeCommaIntSlice`: `[1,2]`, `"1,2"` and `1` are all accepted. */
export function commaInts(value: unknown, field: string): number[] {
  if (value === null || value === undefined) return [];
  const items = Array.isArray(value) ? value : typeof value === "string" ? value.split(",") : [value];
  return items
    .filter((item) => !(typeof item === "string" && item.trim() === ""))
    .map((item) => weakInt(typeof item === "string" ? item.trim() : item, field));
}

/** True for a plain JSON object (what Go decodes into `map[string]interface{}`). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
