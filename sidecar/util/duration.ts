const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * A duration written as a whole number and one unit, `s`, `m`, `h`, `d` or `w` ("30m", "24h",
 * "7d"), in milliseconds; null for anything else.
 */
export function parseDurationMs(text: string): number | null {
  const m = /^(\d{1,9})([smhdw])$/.exec(text.trim());
  if (!m?.[1] || !m[2]) return null;
  const unit = UNIT_MS[m[2]];
  return unit === undefined ? null : Number(m[1]) * unit;
}
