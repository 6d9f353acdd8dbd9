import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createLogger } from "../../sidecar/logger.js";
import { VaultStore } from "../../sidecar/secrets/index.js";
import { type VaultDevServer, startVaultDev } from "../vault-dev/server.js";

/** A Vault to test against: a real one, or a dev server this process started. */
export interface VaultHandle {
  /** Base address without a trailing slash, e.g. `http://127.0.0.1:8200`. */
  readonly address: string;
  /** A token with root (or equivalent) rights. */
  readonly token: string;
  /** The KV v2 mount, without slashes. */
  readonly mount: string;
  /** Set only for the dev server: fault switches and dev-only behaviour. */
  readonly dev?: VaultDevServer;
  /** Stops the dev server; nothing to do for a real Vault. */
  close(): Promise<void>;
}

/**
 * True when a Docker engine looks reachable (DOCKER_HOST, or the default socket): then
 * `LEASEHOLD_VAULT=testcontainers` runs the Vault tests against a real `hashicorp/vault`
 * container through testcontainers. There is no Docker engine on this project's
 * machines, so that path is optional and never required.
 */
export function dockerReachable(): boolean {
  return Boolean(process.env.DOCKER_HOST) || existsSync("/var/run/docker.sock");
}

/**
 * Starts a real Vault in a container (dev mode, KV v2 at secret/). Needs a Docker engine.
 * Plain testcontainers (11.x, which runs on Node 20) set up as @testcontainers/vault does: that
 * module exists only for testcontainers 12, which wants Node 22.
 */
export async function startVaultContainer(): Promise<VaultHandle> {
  const { GenericContainer, Wait } = await import("testcontainers");
  const token = `root-${randomBytes(8).toString("hex")}`;
  const port = 8200;
  const container = await new GenericContainer("hashicorp/vault:1.17")
    .withExposedPorts(port)
    .withEnvironment({
      VAULT_ADDR: `http://0.0.0.0:${port}`,
      VAULT_DEV_ROOT_TOKEN_ID: token,
      VAULT_TOKEN: token,
    })
    .withAddedCapabilities("IPC_LOCK")
    .withWaitStrategy(Wait.forHttp("/v1/sys/health", port).forStatusCode(200))
    .start();
  return {
    address: `http://${container.getHost()}:${container.getMappedPort(port)}`,
    token,
    mount: "secret",
    close: async () => {
      await container.stop();
    },
  };
}

/** True when `VAULT_ADDR` and `VAULT_TOKEN` name a real Vault to test against. */
export function realVaultConfigured(): boolean {
  return Boolean(process.env.VAULT_ADDR && process.env.VAULT_TOKEN);
}

/**
 * The real Vault named by `VAULT_ADDR` + `VAULT_TOKEN` (KV v2 mount from
 * `VAULT_KV_MOUNT`, default `secret`) when both are set; otherwise a fresh dev
 * server on a free port with a random root token, so nothing can rely on `"root"`.
 */
export async function useVault(): Promise<VaultHandle> {
  const address = process.env.VAULT_ADDR;
  const token = process.env.VAULT_TOKEN;
  if (address && token) {
    return {
      address: address.replace(/\/+$/, ""),
      token,
      mount: (process.env.VAULT_KV_MOUNT ?? "secret").replace(/^\/+|\/+$/g, ""),
      close: async () => {},
    };
  }
  if (process.env.LEASEHOLD_VAULT === "testcontainers") return startVaultContainer();
  const dev = await startVaultDev({ port: 0, rootToken: `hvs.dev-root-${randomBytes(12).toString("hex")}` });
  return { address: dev.address, token: dev.rootToken, mount: "secret", dev, close: () => dev.close() };
}

/** A VaultStore on `vault` under `prefix`, as the sidecar's own (for tests that read its records). */
export function testVaultStore(vault: VaultHandle, prefix: string): VaultStore {
  return new VaultStore({
    address: vault.address,
    auth: { method: "token", token: vault.token },
    mount: vault.mount,
    prefix,
    timeoutMs: 5_000,
    log: createLogger("silent"),
  });
}

/** A Vault HTTP API call with `token`: the status and the JSON answer (`{}` when empty). */
export async function vaultCall(
  vault: VaultHandle,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${vault.address}/v1/${path}`, {
    method,
    headers: {
      "x-vault-token": token,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}
