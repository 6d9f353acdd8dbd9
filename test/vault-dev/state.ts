import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import type { ApproleState } from "./auth-approle.js";
import { isJsonObject } from "./go-format.js";
import { type KvMountState, emptyKvMount } from "./kv2-model.js";
import type { TokenEntry } from "./token-store.js";
import type { WrappedResponses } from "./wrapping.js";

/** Everything the server keeps, in a shape that round-trips through JSON. */
export interface DevState {
  version: 1;
  cluster: { name: string; id: string };
  kv: KvMountState;
  tokens: Record<string, TokenEntry>;
  /** Custom ACL policies by name. */
  policies: Record<string, string>;
  approle: ApproleState;
  wrapped: WrappedResponses;
}

/** A fresh state: new cluster identity, empty stores. */
export function emptyState(): DevState {
  return {
    version: 1,
    cluster: { name: `vault-cluster-${randomBytes(4).toString("hex")}`, id: randomUUID() },
    kv: emptyKvMount(),
    tokens: {},
    policies: {},
    approle: {},
    wrapped: {},
  };
}

/**
 * The state saved in `file`, or a fresh one when there is no file yet. A file that
 * is not a state written by {@link saveState} is an error, not silently replaced.
 */
export function loadState(file: string | undefined): DevState {
  if (file === undefined || !existsSync(file)) return emptyState();
  const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
  if (!isJsonObject(parsed) || parsed.version !== 1) {
    throw new Error(`vault-dev: ${file} is not a vault-dev state file (version 1)`);
  }
  // The file is ours; fill gaps so an older or hand-edited file still loads.
  return { ...emptyState(), ...(parsed as Partial<DevState>), version: 1 };
}

/** Serialises the state (the caller compares it to decide whether to write). */
export function serializeState(state: DevState): string {
  return `${JSON.stringify(state, null, 2)}\n`;
}

/** Writes atomically (temp file + rename), so a crash never leaves half a file. */
export function saveState(file: string, serialized: string): void {
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, serialized, { mode: 0o600 });
  renameSync(temp, file);
}
