import type { ClientOptions } from "./types.js";

/**
 * Client options completed from the environment, as Vault's tools read `VAULT_ADDR`: an option
 * given wins; else `LEASEHOLD_ADDR` (an http(s) URL, or `unix:/path/to.sock`; `LEASEHOLD_URL`
 * is accepted as an alias), else `LEASEHOLD_SOCKET`, names the sidecar, and
 * `LEASEHOLD_AGENT_KEY` the agent's key file. Empty variables count as unset.
 */
export function clientOptionsFromEnv(
  opts: ClientOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): ClientOptions {
  const val = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  const out: { -readonly [K in keyof ClientOptions]: ClientOptions[K] } = { ...opts };
  if (!out.url && !out.socketPath) {
    const addr = val("LEASEHOLD_ADDR") ?? val("LEASEHOLD_URL");
    if (addr?.startsWith("unix:")) out.socketPath = addr.slice("unix:".length).replace(/^\/\/(?=\/)/, "");
    else if (addr !== undefined) out.url = addr;
    else {
      const socket = val("LEASEHOLD_SOCKET");
      if (socket !== undefined) out.socketPath = socket;
    }
  }
  if (!out.keyFile) {
    const key = val("LEASEHOLD_AGENT_KEY");
    if (key !== undefined) out.keyFile = key;
  }
  return out;
}
