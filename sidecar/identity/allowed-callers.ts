import type { CallerPin } from "./types.js";

const MAX_PINS = 32;
const MAX_CGROUP = 4096;
const HEX64 = /^[0-9a-f]{64}$/;
const MEMBERS = new Set(["uid", "exe_sha256", "cgroup"]);
// Controls and bidi marks, as elsewhere in a bundle: the values reach audit views.
const UNPRINTABLE = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\p{Cs}]/u;

/**
 * Reads the `allowedCallers` member of a trust-bundle key (issue 22): the local callers the key's
 * agent may act from. A list of 1 to 32 objects, each naming at least one of `uid` (an integer
 * from 0), `exe_sha256` (64 lowercase hex digits) and `cgroup` (a path); a caller matches an
 * entry when it is attested and equal on every part the entry names. Absent means no pin.
 * @returns the pins (undefined: none), or the problem that makes them unusable
 */
export function parseAllowedCallers(
  raw: unknown,
): { ok: true; pins: readonly CallerPin[] | undefined } | { ok: false; problem: string } {
  if (raw === undefined) return { ok: true, pins: undefined };
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_PINS) {
    return { ok: false, problem: `allowedCallers must be a list of 1 to ${MAX_PINS} entries` };
  }
  const pins: CallerPin[] = [];
  for (const [i, entry] of raw.entries()) {
    const where = `allowedCallers[${i}]`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      return { ok: false, problem: `${where} must be an object` };
    }
    const e = entry as Record<string, unknown>;
    const unknown = Object.keys(e).find((k) => !MEMBERS.has(k));
    if (unknown !== undefined) {
      return {
        ok: false,
        problem: `${where}: unknown member "${unknown.slice(0, 64)}" (uid, exe_sha256, cgroup)`,
      };
    }
    const pin: { uid?: number; exe_sha256?: string; cgroup?: string } = {};
    if (e.uid !== undefined) {
      if (!Number.isSafeInteger(e.uid) || (e.uid as number) < 0)
        return { ok: false, problem: `${where}.uid must be an integer from 0` };
      pin.uid = e.uid as number;
    }
    if (e.exe_sha256 !== undefined) {
      if (typeof e.exe_sha256 !== "string" || !HEX64.test(e.exe_sha256))
        return { ok: false, problem: `${where}.exe_sha256 must be 64 lowercase hex digits` };
      pin.exe_sha256 = e.exe_sha256;
    }
    if (e.cgroup !== undefined) {
      if (
        typeof e.cgroup !== "string" ||
        e.cgroup === "" ||
        e.cgroup.length > MAX_CGROUP ||
        UNPRINTABLE.test(e.cgroup)
      )
        return { ok: false, problem: `${where}.cgroup must be a cgroup path` };
      pin.cgroup = e.cgroup;
    }
    if (Object.keys(pin).length === 0) {
      return { ok: false, problem: `${where} must name uid, exe_sha256 or cgroup` };
    }
    pins.push(pin);
  }
  return { ok: true, pins };
}
