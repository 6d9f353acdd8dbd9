import { readAdminToken } from "./admin-token.js";
import type { Config } from "./config.js";
import { mintIdentityAssertion } from "./identity/index.js";

/** An error answer of the sidecar, as the CLI shows it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ClientIdentity {
  /**
   * An operator's own key file (`leasehold agent keygen`): each request carries a fresh
   * 60-second identity JWT signed with it, instead of the admin token.
   */
  readonly identityKey?: string | undefined;
}

/**
 * Talks to the running sidecar named by the config, with the admin token, or as an operator
 * identity that the sidecar's policy decides for.
 */
export class SidecarClient {
  private constructor(
    private readonly base: string,
    private readonly token: () => Promise<string>,
  ) {}

  static async fromConfig(config: Config, who: ClientIdentity = {}): Promise<SidecarClient> {
    const host =
      config.listen.host === "0.0.0.0" || config.listen.host === "::" ? "127.0.0.1" : config.listen.host;
    const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
    const keyFile = who.identityKey;
    if (keyFile !== undefined) {
      const audience = config.identity.audience;
      // Checked once up front, so a bad key file is one clear error before any request.
      await mintIdentityAssertion({ keyFile, audience }).catch((err: unknown) => {
        throw new ApiError(0, "bad_identity_key", `--identity-key: ${(err as Error).message}`);
      });
      return new SidecarClient(`http://${h}:${config.listen.port}`, () =>
        mintIdentityAssertion({ keyFile, audience, ttlSeconds: 60 }),
      );
    }
    const admin = await readAdminToken(config.admin.tokenFile);
    return new SidecarClient(`http://${h}:${config.listen.port}`, async () => admin);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    const token = await this.token();
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          // The sidecar's CSRF rule: state-changing requests show they are not a blind browser request.
          "x-leasehold-request": "true",
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(
        0,
        "unreachable",
        `cannot reach the sidecar at ${this.base}: is 'leasehold serve' running?`,
      );
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      throw new ApiError(
        res.status,
        "bad_response",
        `the sidecar answered ${res.status} with a non-JSON body`,
      );
    }
    if (!res.ok) {
      const e = (json as { error?: { code?: string; message?: string } }).error;
      throw new ApiError(
        res.status,
        e?.code ?? "error",
        `${e?.code ?? res.status}: ${e?.message ?? "request failed"}`,
      );
    }
    return json as T;
  }
}
