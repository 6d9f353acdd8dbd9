import { mintIdentityAssertion } from "../identity/index.js";
import { clientOptionsFromEnv } from "./env.js";
import { LeaseholdClientError } from "./errors.js";

export interface IdentityFetchOptions {
  /** The agent's private key file. @default `LEASEHOLD_AGENT_KEY` */
  readonly keyFile?: string | undefined;
  /** The sidecar's `identity.audience`. @default "leasehold" */
  readonly audience?: string | undefined;
  /** Each assertion's lifetime, seconds. @default 60 */
  readonly ttlSeconds?: number | undefined;
  /** The fetch to wrap. @default globalThis.fetch */
  readonly fetch?: typeof fetch | undefined;
}

/**
 * A `fetch` that signs a fresh identity assertion for every request (`Authorization: Bearer`),
 * for MCP over HTTP (`POST /mcp`): the sidecar wants a valid token of the same agent on every
 * request of a session, and an assertion lives a minute, so a fixed header stops working.
 * Pass it to the MCP SDK's `StreamableHTTPClientTransport` as its `fetch` option.
 * @throws LeaseholdClientError `invalid_options` without a key file, `bad_key` when it cannot sign.
 */
export function identityFetch(opts: IdentityFetchOptions = {}): typeof fetch {
  const keyFile = opts.keyFile ?? clientOptionsFromEnv({}).keyFile;
  if (typeof keyFile !== "string" || keyFile.length === 0) {
    throw new LeaseholdClientError("invalid_options", "keyFile is required (or set LEASEHOLD_AGENT_KEY)");
  }
  const inner = opts.fetch ?? globalThis.fetch;
  return async (input, init) => {
    const jwt = await mintIdentityAssertion({
      keyFile,
      audience: opts.audience ?? "leasehold",
      ttlSeconds: opts.ttlSeconds ?? 60,
    }).catch((err: unknown) => {
      throw new LeaseholdClientError(
        "bad_key",
        `cannot sign an identity assertion with the key file ${keyFile}: ${(err as Error).message}`,
      );
    });
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    headers.set("authorization", `Bearer ${jwt}`);
    return inner(input, { ...init, headers });
  };
}
