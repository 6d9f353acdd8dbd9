import { existsSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import type { Endpoint } from "../client/transport.js";
import type { Config } from "../config.js";
import { ConfigError, configPathFrom, expandEnv, readConfigFile } from "../config-file.js";

/**
 * What a client command (leases, approvals, resources, cluster, …) needs to talk to a running
 * sidecar, and nothing more: where it listens, the admin token file, and the identity audience
 * (for `--identity-key`). Never the server's secrets.
 */
export interface ClientSettings {
  /** How to reach the sidecar: its Unix socket, or its TCP base URL. */
  readonly endpoint: Endpoint;
  /** The endpoint as messages name it: `http://127.0.0.1:7733` or `unix:/run/leasehold.sock`. */
  readonly where: string;
  /** The sidecar's TCP base URL when one is known (`leases watch` follows its stream over TCP). */
  readonly tcpUrl: string | undefined;
  /** The admin token file, absolute; undefined when neither the environment nor a config names one. */
  readonly adminTokenFile: string | undefined;
  /** Where `adminTokenFile` came from, for messages: `LEASEHOLD_ADMIN_TOKEN_FILE` or `admin.tokenFile of FILE`. */
  readonly adminTokenFrom: string;
  /** The audience of identity JWTs minted with `--identity-key`. @default "leasehold" */
  readonly audience: string;
}

/** The sidecar's address as the config's `listen` names it (a wildcard host is reached on loopback). */
export function listenUrl(host: string, port: number): string {
  const h = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  return `http://${h.includes(":") && !h.startsWith("[") ? `[${h}]` : h}:${port}`;
}

/** The client settings of a full, validated config (the same answer `clientSettings` gives from its file). */
export function clientSettingsFromConfig(config: Config): ClientSettings {
  const socket = config.listen.socket;
  const tcpUrl = listenUrl(config.listen.host, config.listen.port);
  return {
    endpoint: socket ? { socketPath: socket } : { url: tcpUrl },
    where: socket ? `unix:${socket}` : tcpUrl,
    tcpUrl,
    adminTokenFile: config.admin.tokenFile,
    adminTokenFrom: "admin.tokenFile of its config",
    audience: config.identity.audience,
  };
}

/** The three sections a client reads from a config file, defaults applied, `${…}` expanded in them only. */
interface FileSections {
  readonly file: string;
  readonly host: string;
  readonly port: number;
  readonly socket: string | null;
  readonly tokenFile: string;
  readonly audience: string;
}

function section(raw: unknown, key: string, file: string): Record<string, unknown> {
  const v = (raw as Record<string, unknown> | null | undefined)?.[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw new ConfigError(`${file}: ${key}: must be a mapping`);
  return v as Record<string, unknown>;
}

function stringAt(sec: Record<string, unknown>, key: string, path: string, dflt: string): string {
  const v = sec[key];
  if (v === undefined) return dflt;
  if (typeof v !== "string" || v === "") throw new ConfigError(`${path}: must be a non-empty string`);
  return v;
}

/**
 * Reads only `listen`, `admin` and `identity.audience` of a config file, with the same defaults
 * as the full schema (test/cli/client-settings.test.ts keeps them in step). Other sections, and
 * the `${…}` in them, are not looked at: `serve` validates the whole file.
 */
async function readSections(file: string, env: NodeJS.ProcessEnv): Promise<FileSections> {
  const { parse } = await import("yaml");
  const { raw, dir } = readConfigFile(file, parse);
  const at = (p: string): string => `${file}: ${p}`;
  const listen = expandEnv(section(raw, "listen", file), env, "listen") as Record<string, unknown>;
  const admin = expandEnv(section(raw, "admin", file), env, "admin") as Record<string, unknown>;
  const identity = section(raw, "identity", file);
  const audience = expandEnv(identity.audience, env, "identity.audience");
  const port = listen.port ?? 7733;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new ConfigError(`${at("listen.port")}: must be a whole number, 0-65535`);
  const socket = listen.socket ?? null;
  if (socket !== null && (typeof socket !== "string" || socket === ""))
    throw new ConfigError(`${at("listen.socket")}: must be a path or null`);
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(dir, p));
  return {
    file: resolve(file),
    host: stringAt(listen, "host", at("listen.host"), "127.0.0.1"),
    port,
    socket: socket === null ? null : abs(socket),
    tokenFile: abs(stringAt(admin, "tokenFile", at("admin.tokenFile"), "./state/admin.token")),
    audience: stringAt({ audience }, "audience", at("identity.audience"), "leasehold"),
  };
}

/** An environment variable's value; empty counts as unset. */
function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === "" ? undefined : v;
}

/** `LEASEHOLD_ADDR` (alias `LEASEHOLD_URL`): an http(s) URL or `unix:/path`; else `LEASEHOLD_SOCKET`. */
function endpointFromEnv(env: NodeJS.ProcessEnv): { endpoint: Endpoint; where: string } | undefined {
  const addr = envValue(env, "LEASEHOLD_ADDR") ?? envValue(env, "LEASEHOLD_URL");
  const socket = addr?.startsWith("unix:") ? addr.slice("unix:".length) : envValue(env, "LEASEHOLD_SOCKET");
  if (addr !== undefined && !addr.startsWith("unix:")) {
    let url: URL;
    try {
      url = new URL(addr);
    } catch {
      throw new ConfigError(
        `LEASEHOLD_ADDR: "${addr}" is not a URL (e.g. http://127.0.0.1:7733 or unix:/path)`,
      );
    }
    if (url.protocol !== "http:" && url.protocol !== "https:")
      throw new ConfigError("LEASEHOLD_ADDR: an http:// or https:// URL, or unix:/path to the socket");
    const base = addr.replace(/\/+$/, "");
    return { endpoint: { url: base }, where: base };
  }
  if (socket === undefined) return undefined;
  const path = resolve(socket);
  return { endpoint: { socketPath: path }, where: `unix:${path}` };
}

function fromSections(s: FileSections): ClientSettings {
  const tcpUrl = listenUrl(s.host, s.port);
  return {
    endpoint: s.socket ? { socketPath: s.socket } : { url: tcpUrl },
    where: s.socket ? `unix:${s.socket}` : tcpUrl,
    tcpUrl,
    adminTokenFile: s.tokenFile,
    adminTokenFrom: `admin.tokenFile of ${s.file}`,
    audience: s.audience,
  };
}

/**
 * The client settings of a CLI run. `--config FILE` given: that file's `listen`, `admin` and
 * `identity.audience`. Else the environment: `LEASEHOLD_ADDR` (or `LEASEHOLD_SOCKET`) and
 * `LEASEHOLD_ADMIN_TOKEN_FILE`, and for whatever they leave out the file `LEASEHOLD_CONFIG`
 * names, or `./leasehold.yaml` when it exists.
 */
export async function clientSettings(
  configFlag: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<ClientSettings> {
  if (configFlag !== undefined) return fromSections(await readSections(configFlag, env));
  const fromEnv = endpointFromEnv(env);
  const tokenFile = envValue(env, "LEASEHOLD_ADMIN_TOKEN_FILE");
  const file = configPathFrom(undefined, env);
  const mustRead = env.LEASEHOLD_CONFIG !== undefined || fromEnv === undefined;
  if (!mustRead && !existsSync(file)) {
    return {
      ...fromEnv,
      tcpUrl: "url" in fromEnv.endpoint ? fromEnv.endpoint.url : undefined,
      adminTokenFile: tokenFile === undefined ? undefined : resolve(tokenFile),
      adminTokenFrom: "LEASEHOLD_ADMIN_TOKEN_FILE",
      audience: "leasehold",
    };
  }
  if (fromEnv === undefined && !existsSync(file) && env.LEASEHOLD_CONFIG === undefined) {
    throw new ConfigError(
      "no sidecar named: set LEASEHOLD_ADDR (or LEASEHOLD_SOCKET) and LEASEHOLD_ADMIN_TOKEN_FILE, or give --config FILE (there is no ./leasehold.yaml here)",
    );
  }
  const base = fromSections(await readSections(file, env));
  return {
    ...base,
    ...(fromEnv ?? {}),
    tcpUrl:
      fromEnv === undefined ? base.tcpUrl : "url" in fromEnv.endpoint ? fromEnv.endpoint.url : base.tcpUrl,
    ...(tokenFile === undefined
      ? {}
      : { adminTokenFile: resolve(tokenFile), adminTokenFrom: "LEASEHOLD_ADMIN_TOKEN_FILE" }),
  };
}

/** What `leases watch` follows: the sidecar's TCP URL and the admin token (its stream needs both). */
export async function watchTarget(s: ClientSettings): Promise<{ url: string; token: string }> {
  if (s.tcpUrl === undefined)
    throw new ConfigError(
      "leases watch follows the event stream over TCP: set LEASEHOLD_ADDR to the sidecar's http:// URL",
    );
  if (s.adminTokenFile === undefined)
    throw new ConfigError(
      "leases watch needs the admin token: set LEASEHOLD_ADMIN_TOKEN_FILE or give --config FILE",
    );
  const { readAdminToken } = await import("../admin-token.js");
  return { url: s.tcpUrl, token: await readAdminToken(s.adminTokenFile) };
}
