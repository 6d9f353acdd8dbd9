import type { Config } from "./config.js";
import { readAdminToken } from "./admin-token.js";

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

/** Talks to the running sidecar named by the config, with the admin token. */
export class SidecarClient {
  private constructor(
    private readonly base: string,
    private readonly token: string,
  ) {}

  static async fromConfig(config: Config): Promise<SidecarClient> {
    const host =
      config.listen.host === "0.0.0.0" || config.listen.host === "::" ? "127.0.0.1" : config.listen.host;
    const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
    return new SidecarClient(
      `http://${h}:${config.listen.port}`,
      await readAdminToken(config.admin.tokenFile),
    );
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
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
