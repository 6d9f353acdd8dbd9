import { readAdminToken } from "../admin-token.js";
import type { Config } from "../config.js";
import { LeaseholdClientError } from "../client/errors.js";
import { answerError, createTransport, type TransportResponse, type Transport } from "../client/transport.js";
import { ApiError, type ApiErrorDetail } from "./api-error.js";
import { type ClientSettings, clientSettingsFromConfig, listenUrl } from "./client-settings.js";

export { ApiError, type ApiErrorDetail, detailLine } from "./api-error.js";

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
  return listenUrl(config.listen.host, config.listen.port);
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
    /** Where the admin token the CLI sends was read from (the file, and what named it), for the 401 that refuses it. */
    private readonly adminTokenFile?: string,
  ) {}

  /** A client of the sidecar a full config names (`serve`'s own config). */
  static async fromConfig(config: Config, who: ClientIdentity = {}): Promise<SidecarClient> {
    return SidecarClient.connect(clientSettingsFromConfig(config), who);
  }

  /** A client of the sidecar the client settings name (client-settings.ts). */
  static async connect(settings: ClientSettings, who: ClientIdentity = {}): Promise<SidecarClient> {
    const transport = createTransport(settings.endpoint);
    const where = settings.where;
    const keyFile = who.identityKey;
    if (keyFile !== undefined) {
      const audience = settings.audience;
      // Loaded here only: a run with the admin token never needs the signing code. This one file
      // of identity/, not its index: the CLI's start time is the budget (bench/cli-start.ts).
      const { mintIdentityAssertion } = await import("../identity/identity-assertion.js");
      // Checked once up front, so a bad key file is one clear error before any request.
      await mintIdentityAssertion({ keyFile, audience }).catch((err: unknown) => {
        throw new ApiError(0, "bad_identity_key", `--identity-key: ${(err as Error).message}`);
      });
      return new SidecarClient(transport, where, () =>
        mintIdentityAssertion({ keyFile, audience, ttlSeconds: 60 }),
      );
    }
    if (settings.adminTokenFile === undefined) {
      throw new ApiError(
        0,
        "no_admin_token",
        "no admin token file: set LEASEHOLD_ADMIN_TOKEN_FILE, give --config FILE, or act as an operator with --identity-key FILE",
      );
    }
    const admin = await readAdminToken(settings.adminTokenFile);
    return new SidecarClient(
      transport,
      where,
      async () => admin,
      `${settings.adminTokenFile} (${settings.adminTokenFrom})`,
    );
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
            ? ` (hint: the CLI sent the admin token read from ${this.adminTokenFile}; it must be the file of the sidecar at ${this.where})`
            : "";
      throw new ApiError(res.status, e.code, `${e.code}: ${e.message}${hint}`, detailsOf(res.json));
    }
    return res.json as T;
  }
}
