import { randomInt } from "node:crypto";
import type { PasswordConstraints } from "../../adapters/adapter.js";

const CLASSES = {
  lower: "abcdefghijkmnopqrstuvwxyz",
  upper: "ABCDEFGHJKLMNPQRSTUVWXYZ",
  digit: "23456789",
  symbol: "-_.~+=",
} as const;

export interface PasswordPolicy {
  readonly length: number;
  /** Characters never used. */
  readonly exclude: string;
}

/**
 * A random password with at least one character of each class, drawn with crypto.randomInt
 * (no modulo bias), within the target's constraints and without excluded characters.
 */
export function generatePassword(policy: PasswordPolicy, constraints: PasswordConstraints): string {
  const banned = new Set([...policy.exclude, ...constraints.forbidden]);
  const classes = Object.values(CLASSES)
    .map((c) => [...c].filter((ch) => !banned.has(ch)).join(""))
    .filter((c) => c.length > 0);
  const all = classes.join("");
  if (all.length < 10) throw new Error("password policy excludes too many characters");
  const length = Math.min(
    Math.max(policy.length, constraints.minLength, classes.length),
    constraints.maxLength,
  );
  const chars: string[] = classes.map((c) => c[randomInt(c.length)] as string);
  while (chars.length < length) chars.push(all[randomInt(all.length)] as string);
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j] as string, chars[i] as string];
  }
  return chars.join("");
}
