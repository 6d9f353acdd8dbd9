import { formatTime } from "./go-format.js";
import { compareGoStrings } from "./http-util.js";

/** Engine-wide config (`<mount>/config`). Durations in seconds; -1 = delete_version_after disabled. */
export interface KvConfig {
  maxVersions: number;
  casRequired: boolean;
  deleteVersionAfter: number;
}

/** One version's metadata plus its data (gone once destroyed). Times in epoch ms. */
export interface KvVersion {
  createdTime: number;
  deletionTime: number | null;
  destroyed: boolean;
  data?: Record<string, unknown>;
}

/** `KeyMetadata` of the KV plugin. */
export interface KvKey {
  createdTime: number;
  updatedTime: number;
  currentVersion: number;
  oldestVersion: number;
  maxVersions: number;
  casRequired: boolean;
  deleteVersionAfter: number;
  customMetadata: Record<string, string> | null;
  /** Decimal version number → version. */
  versions: Record<string, KvVersion>;
}

/** Everything one KV v2 mount stores. */
export interface KvMountState {
  config: KvConfig;
  keys: Record<string, KvKey>;
}

/** Vault's default number of versions kept per key. */
export const DEFAULT_MAX_VERSIONS = 10;

/** A mount with default config and no keys. */
export function emptyKvMount(): KvMountState {
  return { config: { maxVersions: 0, casRequired: false, deleteVersionAfter: 0 }, keys: {} };
}

/** Metadata of a key that has no version yet (`current_version` 0). */
export function newKey(now: number): KvKey {
  return {
    createdTime: now,
    updatedTime: now,
    currentVersion: 0,
    oldestVersion: 0,
    maxVersions: 0,
    casRequired: false,
    deleteVersionAfter: 0,
    customMetadata: null,
    versions: {},
  };
}

/** Soft-deleted means a deletion time that has passed; a future one is only scheduled. */
export function isDeleted(version: KvVersion, now: number): boolean {
  return version.deletionTime !== null && version.deletionTime <= now;
}

/**
 * When a version written now will be deleted (`delete_version_after`): the smaller
 * non-zero of config and key, never when the config disables it.
 */
export function scheduledDeletion(config: KvConfig, key: KvKey, now: number): number | null {
  if (config.deleteVersionAfter < 0) return null;
  const candidates = [config.deleteVersionAfter, key.deleteVersionAfter].filter((d) => d > 0);
  if (candidates.length === 0) return null;
  return now + Math.min(...candidates) * 1000;
}

/**
 * `KeyMetadata.AddVersion`: bumps `current_version`, then prunes the oldest versions
 * beyond `max(key.max_versions, config.max_versions)` (10 when both are 0).
 */
export function addVersion(config: KvConfig, key: KvKey, data: Record<string, unknown>, now: number): number {
  key.currentVersion += 1;
  const version = key.currentVersion;
  key.versions[String(version)] = {
    createdTime: now,
    deletionTime: scheduledDeletion(config, key, now),
    destroyed: false,
    data,
  };
  key.updatedTime = now;
  const configured = Math.max(key.maxVersions, config.maxVersions);
  const maxVersions = configured > 0 ? configured : DEFAULT_MAX_VERSIONS;
  if (key.currentVersion - key.oldestVersion >= maxVersions) {
    const versionToDelete = key.currentVersion - maxVersions;
    for (let v = key.oldestVersion; v <= versionToDelete; v++) delete key.versions[String(v)];
    key.oldestVersion = versionToDelete + 1;
  }
  return version;
}

/** The per-version metadata block of read and write responses. */
export function versionMetadata(key: KvKey, version: number): Record<string, unknown> {
  const entry = key.versions[String(version)];
  return {
    created_time: entry ? formatTime(entry.createdTime) : "",
    custom_metadata: key.customMetadata,
    deletion_time: entry?.deletionTime != null ? formatTime(entry.deletionTime) : "",
    destroyed: entry?.destroyed ?? false,
    version,
  };
}

/** Direct children of `prefix` (which ends with `/` or is empty): names, folders with `/`. */
export function listChildren(keys: Iterable<string>, prefix: string): string[] {
  const children = new Set<string>();
  for (const key of keys) {
    if (!key.startsWith(prefix)) continue;
    const rest = key.slice(prefix.length);
    if (rest === "") continue;
    const slash = rest.indexOf("/");
    children.add(slash === -1 ? rest : rest.slice(0, slash + 1));
  }
  return [...children].sort(compareGoStrings);
}

/** RFC 7396 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch;
  const base =
    typeof target === "object" && target !== null && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete base[key];
    else base[key] = mergePatch(base[key], value);
  }
  return base;
}
