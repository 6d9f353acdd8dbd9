import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientSettings, clientSettingsFromConfig } from "../../sidecar/cli/client-settings.js";
import { loadConfig } from "../../sidecar/config.js";

/** Client commands read only `listen`, `admin` and `identity.audience`, or the environment. */
describe("the CLI's client settings", () => {
  let dir: string;
  const file = (name: string) => join(dir, name);
  const write = (name: string, yaml: string) => writeFile(file(name), yaml);
  // A server config whose other sections need variables a client does not have.
  const SERVER = [
    "vault:",
    "  address: http://127.0.0.1:8200",
    "  auth: { method: token, token: '${VAULT_TOKEN}' }",
    "redis: { url: 'redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0' }",
  ].join("\n");

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lh-client-settings-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("gives what the full config gives, with the same defaults, for the same file", async () => {
    const cases = {
      "defaults.yaml": "identity: {}\n",
      "socket.yaml":
        "listen: { socket: ./run/lh.sock, port: 7801 }\nadmin: { tokenFile: ./t/admin.token }\nidentity: { audience: aud-x }\n",
      "wildcard.yaml": "listen: { host: 0.0.0.0, port: 7802, allowRemote: true }\nidentity: {}\n",
      "v6.yaml": "listen: { host: '::1', port: 7803 }\nidentity: {}\n",
    };
    const env = { VAULT_TOKEN: "t", REDIS_PASSWORD: "p" };
    for (const [name, yaml] of Object.entries(cases)) {
      await write(name, `${yaml}${SERVER}\n`);
      const full = clientSettingsFromConfig(loadConfig(file(name), env));
      const light = await clientSettings(file(name), env);
      expect({ ...light, adminTokenFrom: "" }, name).toEqual({ ...full, adminTokenFrom: "" });
    }
  });

  it("with --config, expands ${…} in listen and admin only: an unset VAULT_TOKEN is no error", async () => {
    await write(
      "env.yaml",
      `listen: { port: 7804 }\nadmin: { tokenFile: '\${LH_TOKEN_DIR}/admin.token' }\nidentity: {}\n${SERVER}\n`,
    );
    const s = await clientSettings(file("env.yaml"), { LH_TOKEN_DIR: "/srv/lh" });
    expect(s.where).toBe("http://127.0.0.1:7804");
    expect(s.adminTokenFile).toBe("/srv/lh/admin.token");
    expect(s.adminTokenFrom).toBe(`admin.tokenFile of ${file("env.yaml")}`);
    // The full config does need it: serve still expands everything.
    expect(() => loadConfig(file("env.yaml"), { LH_TOKEN_DIR: "/srv/lh" })).toThrow(
      "vault.auth.token: environment variable VAULT_TOKEN is not set",
    );
    await expect(clientSettings(file("env.yaml"), {})).rejects.toThrow(
      "admin.tokenFile: environment variable LH_TOKEN_DIR is not set",
    );
  });

  it("without --config, LEASEHOLD_ADDR and LEASEHOLD_ADMIN_TOKEN_FILE are enough (no file read)", async () => {
    const s = await clientSettings(undefined, {
      LEASEHOLD_ADDR: "http://127.0.0.1:7805/",
      LEASEHOLD_ADMIN_TOKEN_FILE: "/srv/lh/admin.token",
      LEASEHOLD_CONFIG: undefined,
    });
    expect(s).toMatchObject({
      endpoint: { url: "http://127.0.0.1:7805" },
      where: "http://127.0.0.1:7805",
      tcpUrl: "http://127.0.0.1:7805",
      adminTokenFile: "/srv/lh/admin.token",
      adminTokenFrom: "LEASEHOLD_ADMIN_TOKEN_FILE",
      audience: "leasehold",
    });
  });

  it("reads LEASEHOLD_SOCKET, and unix:PATH in LEASEHOLD_ADDR", async () => {
    const bySocket = await clientSettings(undefined, { LEASEHOLD_SOCKET: "/run/lh/lh.sock" });
    expect(bySocket).toMatchObject({
      endpoint: { socketPath: "/run/lh/lh.sock" },
      where: "unix:/run/lh/lh.sock",
    });
    expect(bySocket.adminTokenFile).toBeUndefined();
    const byAddr = await clientSettings(undefined, { LEASEHOLD_ADDR: "unix:/run/lh/other.sock" });
    expect(byAddr.endpoint).toEqual({ socketPath: "/run/lh/other.sock" });
  });

  it("the environment completes LEASEHOLD_CONFIG's file, and overrides it", async () => {
    await write("base.yaml", `listen: { port: 7806 }\nidentity: { audience: aud-y }\n${SERVER}\n`);
    const s = await clientSettings(undefined, {
      LEASEHOLD_CONFIG: file("base.yaml"),
      LEASEHOLD_ADMIN_TOKEN_FILE: "/srv/other/admin.token",
    });
    expect(s).toMatchObject({
      where: "http://127.0.0.1:7806",
      adminTokenFile: "/srv/other/admin.token",
      audience: "aud-y",
    });
  });

  it("refuses what it cannot use, saying what to set", async () => {
    await expect(clientSettings(undefined, { LEASEHOLD_ADDR: "127.0.0.1:7733" })).rejects.toThrow(
      "LEASEHOLD_ADDR",
    );
    await expect(clientSettings(undefined, { LEASEHOLD_ADDR: "ftp://x" })).rejects.toThrow(
      "an http:// or https:// URL",
    );
    // Nothing named (and no ./leasehold.yaml in the repository's root, where tests run).
    await expect(clientSettings(undefined, {})).rejects.toThrow(
      "set LEASEHOLD_ADDR (or LEASEHOLD_SOCKET) and LEASEHOLD_ADMIN_TOKEN_FILE, or give --config FILE",
    );
    await write("badport.yaml", "listen: { port: '${LH_PORT}' }\n");
    await expect(clientSettings(file("badport.yaml"), { LH_PORT: "7733" })).rejects.toThrow(
      "listen.port: must be a whole number",
    );
  });
});
