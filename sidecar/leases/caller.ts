/**
 * The parts of a local caller a lease can be bound to (`identity.bindCaller`): `uid` the user,
 * `cgroup` the cgroup (container, systemd unit), `process` the process that checked out or one of
 * its descendants, `exe` the executable's SHA-256.
 */
export const CALLER_PARTS = ["uid", "cgroup", "process", "exe"] as const;

export type CallerPart = (typeof CALLER_PARTS)[number];

/** What a use of a bound lease by another caller does (`identity.onCallerMismatch`). */
export type CallerMismatchAction = "refuse" | "revoke";
