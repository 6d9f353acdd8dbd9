import { readAdminToken } from "../admin-token.js";
import type { Config } from "../config.js";
import { LeaseholdClientError } from "../client/errors.js";
import {
  answerError,
  createTransport,
  type Endpoint,
  type TransportResponse,
  type Transport,
} from "../client/transport.js";
import { mintIdentityAssertion } from "../identity/index.js";

/** One per-field reason of an error answer (`error.details`), as the sidecar sent it. */
export interface ApiErrorDetail {
  readonly field: string;
  readonly message: string;
}

/** An error answer of the sidecar, as the CLI shows it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The answer's `error.details`, when it had any (each failed item behind the message). */
    readonly details: readonly ApiErrorDetail[] = [],
  ) {
    super(message);
  }
}

/**
 * How the CLI shows one detail of an error answer: `FAIL  account NAME: reason` for an account of
 * a registration (its message starts with the account's name), else `FAIL  FIELD: reason`.
 */
export function detailLine(d: ApiErrorDetail): string {
  return /^registration\.accounts\.\d+$/.test(d.field)
    ? `FAIL  account ${d.message}`
    : `FAIL  ${d.field}: ${d.message}`;
}

/** The well-formed entries of an error answer's `details` (anything else is ignored). */
function detailsOf(json: unknown): ApiErrorDetail[] {
  const raw = (json as { error?: { details?: unknown } } | null)?.error?.details;
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((d: unknown) => {
    const { field, message } = (d ?? {}) as { field?: unknown; message?: unknown };
    return typeof field === "string" && typeof message === "string" ? [{ field, message }] : [];
  });
}

export interface ClientIdentity {
  /**
   * An operator's own key file (`leasehold agent keygen`): each request carries a fresh
   * 60-second identity JWT signed with it, instead of the admin token.
   */
  readonly identityKey?: string | undefined;
}

/** The sidecar's TCP base URL from its config (a wildcard listen address is reached on loopback). */
export function sidecarTcpUrl(config: Config): string {
  const host =
    config.listen.host === "0.0.0.0" || config.listen.host === "::" ? "127.0.0.1" : config.listen.host;
  const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `http://${h}:${config.listen.port}`;
}

/** Registration verifies every account and rotation runs per account: allow the slow ones. */
const REQUEST_TIMEOUT_MS = 300_000;

/**
 * Talks to the running sidecar named by the config (its Unix socket when `listen.socket` is
 * set, else TCP), with the admin token, or as an operator identity that the sidecar's policy
 * decides for.
 */
export class SidecarClient {
  private constructor(
    private readonly transport: Transport,
    private readonly where: string,
    private readonly token: () => Promise<string>,
    /** Where the admin token the CLI sends was read from, for the 401 that refuses it. */
    private readonly adminTokenFile?: string,
  ) {}

  static async fromConfig(config: Config, who: ClientIdentity = {}): Promise<SidecarClient> {
    const socket = config.listen.socket;
    const endpoint: Endpoint = socket ? { socketPath: socket } : { url: sidecarTcpUrl(config) };
    const where = socket ? `unix:${socket}` : sidecarTcpUrl(config);
    const transport = createTransport(endpoint);
    const keyFile = who.identityKey;
    if (keyFile !== undefined) {
      const audience = config.identity.audience;
      // Checked once up front, so a bad key file is one clear error before any request.
      await mintIdentityAssertion({ keyFile, audience }).catch((err: unknown) => {
        throw new ApiError(0, "bad_identity_key", `--identity-key: ${(err as Error).message}`);
      });
      return new SidecarClient(transport, where, () =>
        mintIdentityAssertion({ keyFile, audience, ttlSeconds: 60 }),
      );
    }
    const admin = await readAdminToken(config.admin.tokenFile);
    return new SidecarClient(transport, where, async () => admin, config.admin.tokenFile);
  }

  async request<T>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown): Promise<T> {
    const token = await this.token();
    let res: TransportResponse;
    try {
      res = await this.transport.send({
        method,
        path,
        headers: { authorization: `Bearer ${token}` },
        body,
        timeoutMs: REQUEST_TIMEOUT_MS,
      });
    } catch (err) {
      if (err instanceof LeaseholdClientError && err.code === "unreachable") {
        throw new ApiError(
          0,
          "unreachable",
          `cannot reach the sidecar at ${this.where}: is 'leasehold serve' running?`,
        );
      }
      const e = err as LeaseholdClientError;
      throw new ApiError(e.status ?? 0, e.code ?? "bad_response", e.message);
    }
    if (res.status < 200 || res.status >= 300) {
      const e = answerError(res);
      const said = (res.json as { error?: { hint?: unknown } } | null)?.error?.hint;
      const hint =
        typeof said === "string"
          ? ` (hint: ${said})`
          : res.status === 401 && this.adminTokenFile !== undefined
            ? ` (hint: the CLI sent the admin token read from ${this.adminTokenFile} (admin.tokenFile of its --config); it must be the file of the sidecar at ${this.where})`
            : "";
      throw new ApiError(res.status, e.code, `${e.code}: ${e.message}${hint}`, detailsOf(res.json));
    }
    return res.json as T;
  }
}
