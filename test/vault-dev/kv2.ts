import {
  type Backend,
  type HandlerContext,
  type LogicalResult,
  failure,
  noResponse,
  rawResult,
  respond,
} from "./backend.js";
import { envelope } from "./envelope.js";
import {
  FieldError,
  commaInts,
  formatGoDuration,
  formatTime,
  isJsonObject,
  parseDurationSeconds,
  weakBool,
  weakInt,
  weakString,
} from "./go-format.js";
import { emptyReply, multierror, rawJsonReply } from "./http-util.js";
import {
  type KvConfig,
  type KvKey,
  type KvMountState,
  addVersion,
  isDeleted,
  listChildren,
  mergePatch,
  newKey,
  scheduledDeletion,
  versionMetadata,
} from "./kv2-model.js";

/**
 * The KV v2 engine (`vault-plugin-secrets-kv`): routes in the plugin's order, the
 * first matching pattern wins, anything else is the "invalid path" 404.
 */
export function createKv2Backend(state: KvMountState, onChange: () => void): Backend {
  const keyExists = (ctx: HandlerContext): boolean => Object.hasOwn(state.keys, ctx.params.path ?? "");
  const kv = new Kv2Handlers(state, onChange);
  return {
    type: "kv",
    routes: [
      {
        pattern: /^config$/,
        fields: ["max_versions", "cas_required", "delete_version_after"],
        exists: () => true,
        operations: { read: () => kv.readConfig(), update: (ctx) => kv.writeConfig(ctx) },
      },
      {
        pattern: /^data\/(?<path>.*?[^/])$/,
        fields: ["path", "version", "options", "data"],
        exists: keyExists,
        operations: {
          read: (ctx) => kv.readData(ctx),
          update: (ctx) => kv.writeData(ctx),
          patch: (ctx) => kv.patchData(ctx),
          delete: (ctx) => kv.deleteLatest(ctx),
        },
      },
      {
        pattern: /^metadata\/(?<path>.*)$/,
        fields: ["path", "cas_required", "max_versions", "delete_version_after", "custom_metadata"],
        exists: keyExists,
        operations: {
          read: (ctx) => kv.readMetadata(ctx),
          update: (ctx) => kv.writeMetadata(ctx),
          patch: (ctx) => kv.patchMetadata(ctx),
          delete: (ctx) => kv.deleteMetadata(ctx),
          list: (ctx) => kv.list(ctx),
        },
      },
      {
        pattern: /^destroy\/(?<path>.*)$/,
        fields: ["path", "versions"],
        operations: { update: (ctx) => kv.destroy(ctx) },
      },
      {
        pattern: /^subkeys\/(?<path>.*)$/,
        fields: ["path", "version", "depth"],
        operations: { read: (ctx) => kv.subkeys(ctx) },
      },
      {
        pattern: /^delete\/(?<path>.*)$/,
        fields: ["path", "versions"],
        operations: { update: (ctx) => kv.deleteVersions(ctx) },
      },
      {
        pattern: /^undelete\/(?<path>.*)$/,
        fields: ["path", "versions"],
        operations: { update: (ctx) => kv.undelete(ctx) },
      },
    ],
    fallback: (ctx) => invalidPath(ctx),
  };
}

const CAS_MISMATCH = "check-and-set parameter did not match the current version";
const CAS_REQUIRED = "check-and-set parameter required for this call";
const CAS_UNPARSABLE = "error parsing check-and-set parameter";
const CAS_FORCED_WARNING =
  '"cas_required" set to false, but is mandated by backend config. This value will be ignored.';

class Kv2Handlers {
  constructor(
    private readonly state: KvMountState,
    private readonly onChange: () => void,
  ) {}

  private get config(): KvConfig {
    return this.state.config;
  }

  private key(ctx: HandlerContext): KvKey | undefined {
    const name = ctx.params.path ?? "";
    return Object.hasOwn(this.state.keys, name) ? this.state.keys[name] : undefined;
  }

  readConfig(): LogicalResult {
    return respond({
      cas_required: this.config.casRequired,
      delete_version_after: formatGoDuration(this.config.deleteVersionAfter),
      max_versions: this.config.maxVersions,
    });
  }

  writeConfig(ctx: HandlerContext): LogicalResult {
    const { data } = ctx;
    if (data.max_versions !== undefined) this.config.maxVersions = weakInt(data.max_versions, "max_versions");
    if (data.cas_required !== undefined)
      this.config.casRequired = weakBool(data.cas_required, "cas_required");
    if (data.delete_version_after !== undefined) {
      const seconds = parseDurationSeconds(data.delete_version_after);
      this.config.deleteVersionAfter = seconds < 0 ? -1 : seconds;
    }
    this.onChange();
    return noResponse();
  }

  readData(ctx: HandlerContext): LogicalResult {
    const key = this.key(ctx);
    if (!key) return noResponse();
    let version = ctx.data.version === undefined ? 0 : weakInt(ctx.data.version, "version");
    if (version <= 0) version = key.currentVersion;
    const entry = key.versions[String(version)];
    if (!entry) return noResponse();
    const metadata = versionMetadata(key, version);
    if (entry.destroyed || isDeleted(entry, ctx.now)) {
      return rawResult(
        rawJsonReply(
          404,
          envelope(ctx.requestId, { data: { data: null, metadata }, warnings: [], auth: null }),
        ),
      );
    }
    return respond({ data: entry.data ?? null, metadata });
  }

  writeData(ctx: HandlerContext): LogicalResult {
    const payload = requireData(ctx);
    if (!payload) return failure(400, "no data provided");
    const name = ctx.params.path ?? "";
    const key = this.key(ctx) ?? newKey(ctx.now);
    const casError = checkAndSet(ctx.data.options, this.config, key);
    if (casError) return failure(400, casError);
    this.state.keys[name] = key;
    const version = addVersion(this.config, key, payload, ctx.now);
    this.onChange();
    return respond(versionMetadata(key, version));
  }

  patchData(ctx: HandlerContext): LogicalResult {
    const payload = requireData(ctx);
    if (!payload) return failure(400, "no data provided");
    const key = this.key(ctx);
    if (!key) return rawResult(emptyReply(404));
    const casError = checkAndSet(ctx.data.options, this.config, key);
    if (casError) return failure(400, casError);
    const current = key.versions[String(key.currentVersion)];
    if (!current) return rawResult(emptyReply(404));
    if (current.destroyed || isDeleted(current, ctx.now)) {
      const data = versionMetadata(key, key.currentVersion);
      return rawResult(rawJsonReply(404, envelope(ctx.requestId, { data, warnings: [], auth: null })));
    }
    const patched = mergePatch(current.data ?? {}, payload);
    const version = addVersion(this.config, key, isJsonObject(patched) ? patched : {}, ctx.now);
    this.onChange();
    return respond(versionMetadata(key, version));
  }

  deleteLatest(ctx: HandlerContext): LogicalResult {
    const key = this.key(ctx);
    const current = key?.versions[String(key.currentVersion)];
    if (current && !current.destroyed && !isDeleted(current, ctx.now)) {
      current.deletionTime = ctx.now;
      this.onChange();
    }
    return noResponse();
  }

  deleteVersions(ctx: HandlerContext): LogicalResult {
    const versions = commaInts(ctx.data.versions, "versions");
    if (versions.length === 0) return failure(400, "No version number provided");
    const key = this.key(ctx);
    for (const version of versions) {
      const entry = key?.versions[String(version)];
      if (entry && !entry.destroyed && !isDeleted(entry, ctx.now)) entry.deletionTime = ctx.now;
    }
    this.onChange();
    return noResponse();
  }

  undelete(ctx: HandlerContext): LogicalResult {
    const versions = commaInts(ctx.data.versions, "versions");
    if (versions.length === 0) return failure(400, "No version number provided");
    const key = this.key(ctx);
    if (!key) return noResponse();
    for (const version of versions) {
      const entry = key.versions[String(version)];
      if (entry && !entry.destroyed) entry.deletionTime = scheduledDeletion(this.config, key, ctx.now);
    }
    this.onChange();
    return noResponse();
  }

  destroy(ctx: HandlerContext): LogicalResult {
    const versions = commaInts(ctx.data.versions, "versions");
    if (versions.length === 0) return failure(400, "no version number provided");
    const key = this.key(ctx);
    for (const version of versions) {
      const entry = key?.versions[String(version)];
      if (!entry) continue;
      entry.destroyed = true;
      delete entry.data;
    }
    this.onChange();
    return noResponse();
  }

  readMetadata(ctx: HandlerContext): LogicalResult {
    const key = this.key(ctx);
    if (!key) return noResponse();
    const versions: Record<string, unknown> = {};
    for (const [number, entry] of Object.entries(key.versions)) {
      versions[number] = {
        created_time: formatTime(entry.createdTime),
        deletion_time: entry.deletionTime === null ? "" : formatTime(entry.deletionTime),
        destroyed: entry.destroyed,
      };
    }
    return respond({
      cas_required: key.casRequired,
      created_time: formatTime(key.createdTime),
      current_version: key.currentVersion,
      custom_metadata: key.customMetadata,
      delete_version_after: formatGoDuration(key.deleteVersionAfter),
      max_versions: key.maxVersions,
      oldest_version: key.oldestVersion,
      updated_time: formatTime(key.updatedTime),
      versions,
    });
  }

  writeMetadata(ctx: HandlerContext): LogicalResult {
    const name = ctx.params.path ?? "";
    if (name === "") return failure(400, "missing path");
    const { data } = ctx;
    const fields = ["max_versions", "cas_required", "delete_version_after", "custom_metadata"];
    if (!fields.some((field) => data[field] !== undefined)) return noResponse();
    let customMetadata: Record<string, string> | undefined;
    if (data.custom_metadata !== undefined) {
      const parsed = parseCustomMetadata(data.custom_metadata, false);
      if (typeof parsed === "string") return failure(400, parsed);
      customMetadata = parsed;
    }
    const update = parseMetadataFields(data);
    const key = this.key(ctx) ?? newKey(ctx.now);
    this.state.keys[name] = key;
    applyMetadataFields(key, update);
    if (customMetadata) key.customMetadata = Object.keys(customMetadata).length > 0 ? customMetadata : null;
    this.onChange();
    return update.casRequired === false && this.config.casRequired
      ? respond(null, { warnings: [CAS_FORCED_WARNING] })
      : noResponse();
  }

  patchMetadata(ctx: HandlerContext): LogicalResult {
    const name = ctx.params.path ?? "";
    if (name === "") return failure(400, "missing path");
    const { data } = ctx;
    if (data.custom_metadata !== undefined) {
      const parsed = parseCustomMetadata(data.custom_metadata, true);
      if (typeof parsed === "string") return failure(400, parsed);
    }
    const key = this.key(ctx);
    if (!key) return rawResult(emptyReply(404));
    const update = parseMetadataFields(data);
    applyMetadataFields(key, update);
    if (isJsonObject(data.custom_metadata)) {
      const merged: Record<string, string> = { ...(key.customMetadata ?? {}) };
      for (const [k, v] of Object.entries(data.custom_metadata)) {
        if (v === null) delete merged[k];
        else merged[k] = weakString(v, "custom_metadata");
      }
      key.customMetadata = Object.keys(merged).length > 0 ? merged : null;
    }
    this.onChange();
    return update.casRequired === false && this.config.casRequired
      ? respond(null, { warnings: [CAS_FORCED_WARNING] })
      : noResponse();
  }

  deleteMetadata(ctx: HandlerContext): LogicalResult {
    delete this.state.keys[ctx.params.path ?? ""];
    this.onChange();
    return noResponse();
  }

  list(ctx: HandlerContext): LogicalResult {
    const keys = listChildren(Object.keys(this.state.keys), ctx.params.path ?? "");
    return respond(keys.length > 0 ? { keys } : {});
  }

  subkeys(ctx: HandlerContext): LogicalResult {
    const key = this.key(ctx);
    if (!key) return noResponse();
    let version = ctx.data.version === undefined ? 0 : weakInt(ctx.data.version, "version");
    if (version <= 0) version = key.currentVersion;
    const depth = ctx.data.depth === undefined ? 0 : weakInt(ctx.data.depth, "depth");
    const entry = key.versions[String(version)];
    if (!entry) return noResponse();
    const metadata = versionMetadata(key, version);
    if (entry.destroyed || isDeleted(entry, ctx.now)) {
      return rawResult(
        rawJsonReply(
          404,
          envelope(ctx.requestId, { data: { metadata, subkeys: null }, warnings: [], auth: null }),
        ),
      );
    }
    return respond({ metadata, subkeys: subkeysOf(entry.data ?? {}, depth, 1) });
  }
}

/** `data` is required on writes and patches (`null` when missing), and must be an object. */
function requireData(ctx: HandlerContext): Record<string, unknown> | null {
  const payload = ctx.data.data;
  if (payload === undefined || payload === null) return null;
  if (!isJsonObject(payload)) throw new FieldError(`error converting input for field "data": expected a map`);
  return payload;
}

/** `validateCheckAndSetOption`: the exact order and texts of the KV plugin. */
function checkAndSet(options: unknown, config: KvConfig, key: KvKey): string | null {
  if (options !== undefined && options !== null && !isJsonObject(options)) {
    throw new FieldError(`error converting input for field "options": expected a map`);
  }
  if (isJsonObject(options) && Object.hasOwn(options, "cas")) {
    let cas: number;
    try {
      cas = options.cas === null ? 0 : weakInt(options.cas, "cas");
    } catch {
      return CAS_UNPARSABLE;
    }
    return cas === key.currentVersion ? null : CAS_MISMATCH;
  }
  return config.casRequired || key.casRequired ? CAS_REQUIRED : null;
}

interface MetadataUpdate {
  maxVersions?: number;
  casRequired?: boolean;
  deleteVersionAfter?: number;
}

function parseMetadataFields(data: Readonly<Record<string, unknown>>): MetadataUpdate {
  const update: MetadataUpdate = {};
  if (data.max_versions !== undefined) update.maxVersions = weakInt(data.max_versions, "max_versions");
  if (data.cas_required !== undefined) update.casRequired = weakBool(data.cas_required, "cas_required");
  if (data.delete_version_after !== undefined) {
    update.deleteVersionAfter = Math.trunc(parseDurationSeconds(data.delete_version_after));
  }
  return update;
}

function applyMetadataFields(key: KvKey, update: MetadataUpdate): void {
  if (update.maxVersions !== undefined) key.maxVersions = update.maxVersions;
  if (update.casRequired !== undefined) key.casRequired = update.casRequired;
  if (update.deleteVersionAfter !== undefined) key.deleteVersionAfter = update.deleteVersionAfter;
}

const MAX_CUSTOM_METADATA_KEYS = 64;
const MAX_CUSTOM_METADATA_KEY_LENGTH = 128;
const MAX_CUSTOM_METADATA_VALUE_LENGTH = 512;
const CUSTOM_METADATA_PREFIX = "custom_metadata validation failed";

/**
 * `parseCustomMetadata` + `validateCustomMetadata`: the map, or the exact error
 * text (a multierror for validation failures). Lengths are in bytes, as in Go.
 */
function parseCustomMetadata(raw: unknown, filterNulls: boolean): Record<string, string> | string {
  if (!isJsonObject(raw))
    throw new FieldError(`error converting input for field "custom_metadata": expected a map`);
  const parsed: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (filterNulls && value === null) continue;
    try {
      parsed[key] = weakString(value, key);
    } catch (err) {
      return `${CUSTOM_METADATA_PREFIX}: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  const keys = Object.keys(parsed);
  if (keys.length > MAX_CUSTOM_METADATA_KEYS) {
    return multierror([
      `${CUSTOM_METADATA_PREFIX}: payload must contain at most ${MAX_CUSTOM_METADATA_KEYS} keys, provided ${keys.length}`,
    ]);
  }
  const errors: string[] = [];
  for (const [key, value] of Object.entries(parsed)) {
    const keyLength = Buffer.byteLength(key);
    if (keyLength === 0 || keyLength > MAX_CUSTOM_METADATA_KEY_LENGTH) {
      errors.push(
        `${CUSTOM_METADATA_PREFIX}: length of key ${JSON.stringify(key)} is ${keyLength} but must be 0 < len(key) <= ${MAX_CUSTOM_METADATA_KEY_LENGTH}`,
      );
    }
    const valueLength = Buffer.byteLength(value);
    if (valueLength === 0 || valueLength > MAX_CUSTOM_METADATA_VALUE_LENGTH) {
      errors.push(
        `${CUSTOM_METADATA_PREFIX}: length of value for key ${JSON.stringify(key)} is ${valueLength} but must be 0 < len(value) <= ${MAX_CUSTOM_METADATA_VALUE_LENGTH}`,
      );
    }
    if (!isPrintable(key)) {
      errors.push(
        `${CUSTOM_METADATA_PREFIX}: key ${JSON.stringify(key)} (${key}) contains unprintable characters`,
      );
    }
    if (!isPrintable(value)) {
      errors.push(
        `${CUSTOM_METADATA_PREFIX}: value for key ${JSON.stringify(key)} contains unprintable characters`,
      );
    }
  }
  return errors.length > 0 ? multierror(errors) : parsed;
}

/** Go `unicode.IsPrint` over every rune: no control, format or separator characters but the space. */
function isPrintable(text: string): boolean {
  return !/[\p{C}\p{Z}]/u.test(text.replace(/ /g, ""));
}

/** Subkeys: the structure of the data with every leaf replaced by null, down to `depth` (0 = all). */
function subkeysOf(value: Record<string, unknown>, depth: number, level: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    out[key] =
      isJsonObject(child) && (depth === 0 || level < depth) ? subkeysOf(child, depth, level + 1) : null;
  }
  return out;
}

const CLI_COMMAND: Record<string, string> = {
  update: "put",
  patch: "patch",
  read: "get",
  list: "list",
  delete: "delete",
};

const ROOT_SUBPATHS = new Set(["metadata", "data", "delete", "undelete", "destroy"]);

/** `pathInvalid`: a raw 404 envelope carrying a warning instead of errors. */
function invalidPath(ctx: HandlerContext): LogicalResult {
  const warning = ROOT_SUBPATHS.has(ctx.path)
    ? "Non-listing operations on the root of a K/V v2 mount are not supported."
    : `Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv ${CLI_COMMAND[ctx.request.operation] ?? "get"}' for this operation.`;
  return rawResult(
    rawJsonReply(404, envelope(ctx.requestId, { data: null, warnings: [warning], auth: null })),
  );
}
