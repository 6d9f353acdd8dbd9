import type { CallerAttestation, ProcessTree } from "../attest/types.js";
import type { AuditCaller, AuditFields, AuditSink } from "../audit/index.js";
import { LeaseholdError } from "../errors.js";
import type { CallerMismatchAction, CallerPart, LeaseCaller } from "../leases/index.js";
import type { CallerPinPort, VerifiedCaller } from "./ports.js";
import type { RequestMeta } from "./request-meta.js";

/** What `identity.bindCaller` and `identity.onCallerMismatch` say, and how process ancestry is read. */
export interface CallerBindingOptions {
  /** The parts a bound lease's later users must share with the caller that checked it out. */
  readonly parts: readonly CallerPart[];
  readonly onMismatch: CallerMismatchAction;
  /** Process ancestry for the `process` part; without it, `process` never matches (fail closed). */
  readonly tree?: ProcessTree | undefined;
}

/**
 * The part that differed: a binding part, `unattested` (the caller could not be resolved) or
 * `host` (another host of the cluster, or this one after a restart: every bound lease is).
 */
export type MismatchPart = CallerPart | "unattested" | "host";

const NO_CONNECTION: CallerAttestation = {
  attested: false,
  transport: "inject",
  reason: "no connection to attest",
};

/**
 * The caller of a request: what `meta.caller` resolves to, or unattested when the request came
 * over no connection. An attestor that fails counts as unattested (fail closed: never bound-equal).
 */
export async function attestedCaller(
  meta: Pick<RequestMeta, "caller"> | undefined,
): Promise<CallerAttestation> {
  if (meta?.caller === undefined) return NO_CONNECTION;
  try {
    return await meta.caller();
  } catch {
    return { attested: false, transport: "inject", reason: "the caller could not be attested" };
  }
}

/** What a lease records of the caller that checks it out (no executable path: its digest names it). */
export function leaseCaller(a: CallerAttestation): LeaseCaller {
  if (!a.attested) return { attested: false };
  // Optional fields assigned, not spread in (issue 19: conditional spreads cost on every checkout).
  type Attested = Extract<LeaseCaller, { attested: true }>;
  const c: { -readonly [K in keyof Attested]: Attested[K] } = {
    attested: true,
    uid: a.uid,
    gid: a.gid,
    pid: a.pid,
    start_time: a.start_time,
    exe_sha256: a.exe_sha256,
    cgroup: a.cgroup,
  };
  if (a.container_id !== undefined) c.container_id = a.container_id;
  if (a.boot_id !== undefined) c.boot_id = a.boot_id;
  return c;
}

/** A caller as an audit record shows it. */
export function auditCaller(a: CallerAttestation | LeaseCaller): AuditCaller {
  if (!a.attested) return { attested: false };
  return {
    attested: true,
    uid: a.uid,
    pid: a.pid,
    start_time: a.start_time,
    exe_sha256: a.exe_sha256,
    cgroup: a.cgroup,
  };
}

/** Whether a lease is bound to its checkout's caller under these options (attested at checkout, some part bound). */
export function isBound(
  o: CallerBindingOptions | undefined,
  bound: LeaseCaller | undefined,
): bound is LeaseCaller & { attested: true } {
  return o !== undefined && o.parts.length > 0 && bound?.attested === true;
}

/**
 * The first bound part on which `current` differs from the caller the lease is bound to, or
 * undefined when it matches every part. An unattested caller never matches a bound lease.
 */
export async function callerMismatch(
  o: CallerBindingOptions,
  bound: LeaseCaller & { attested: true },
  current: CallerAttestation,
): Promise<MismatchPart | undefined> {
  if (!current.attested) return "unattested";
  // pids, cgroups and even uids mean nothing on another host or after a reboot.
  if (bound.boot_id !== undefined && current.boot_id !== bound.boot_id) return "host";
  for (const part of o.parts) {
    switch (part) {
      case "uid":
        if (current.uid !== bound.uid) return part;
        break;
      case "cgroup":
        if (current.cgroup !== bound.cgroup) return part;
        break;
      case "exe":
        if (current.exe_sha256 !== bound.exe_sha256) return part;
        break;
      case "process": {
        const same =
          o.tree !== undefined &&
          (await o.tree
            .isSameOrDescendant(current.pid, current.start_time, bound.pid, bound.start_time)
            .catch(() => false));
        if (!same) return part;
        break;
      }
    }
  }
  return undefined;
}

/** What a refused client is told: which part differed, never who the bound caller is. */
export function mismatchMessage(part: MismatchPart): string {
  const what: Record<MismatchPart, string> = {
    uid: "its user (uid) differs",
    cgroup: "its cgroup differs",
    exe: "its executable differs",
    process: "it is neither that process nor one of its descendants",
    unattested: "this caller could not be attested",
    host: "it runs on another host, or this host has restarted since the checkout",
  };
  return `the lease is bound to another local process (the one that checked it out): ${what[part]}`;
}

/** Whether an attested caller equals a pin on every part it names; an unattested one never does. */
export function matchesPin(caller: CallerAttestation, pin: CallerPinPort): boolean {
  if (!caller.attested) return false;
  if (pin.uid !== undefined && pin.uid !== caller.uid) return false;
  if (pin.exe_sha256 !== undefined && pin.exe_sha256 !== caller.exe_sha256) return false;
  if (pin.cgroup !== undefined && pin.cgroup !== caller.cgroup) return false;
  return true;
}

/**
 * An agent key pinned to local callers (`allowedCallers` in its trust bundle) acts only from one
 * of them: otherwise the request is refused (401 unauthenticated, as any identity refusal) once
 * its `decision` record (`scope: caller_pin`) is written. Returns the request's caller when it
 * was attested for the check (`undefined` for an unpinned key: nothing was asked).
 */
export async function requirePinnedCaller(
  identity: VerifiedCaller,
  caller: CallerAttestation | Promise<CallerAttestation>,
  audit: AuditSink | undefined,
  fields: Omit<AuditFields<"decision">, "event" | "scope">,
): Promise<void> {
  const pins = identity.allowedCallers;
  if (pins === undefined) return;
  const current = await caller;
  if (pins.some((pin) => matchesPin(current, pin))) return;
  const reason = current.attested
    ? "the agent's key is pinned to other local callers (allowedCallers)"
    : "the agent's key is pinned to local callers (allowedCallers) and this caller could not be attested";
  await audit?.append({
    ...fields,
    event: "decision",
    scope: "caller_pin",
    decision: "deny",
    agent: identity.subject,
    caller: auditCaller(current),
    reason,
  });
  throw new LeaseholdError("unauthenticated", reason);
}
