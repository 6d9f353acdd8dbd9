import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../sidecar/logger.js";
import { VaultStore } from "../../sidecar/secrets/index.js";
import { dockerReachable, startVaultContainer } from "../support/vault.js";

/**
 * The same secrets layer against a real `hashicorp/vault` container, where a Docker engine is
 * reachable. The whole Vault suite can also run there: LEASEHOLD_VAULT=testcontainers npm test.
 */
describe("VaultStore against a real Vault in a container (testcontainers)", () => {
  it("reads and writes with check-and-set", async (ctx) => {
    if (!dockerReachable()) {
      ctx.skip(
        "no Docker engine is reachable here (no DOCKER_HOST, no /var/run/docker.sock): the container run is skipped",
      );
    }
    const vault = await startVaultContainer();
    const store = new VaultStore({
      address: vault.address,
      auth: { method: "token", token: vault.token },
      mount: vault.mount,
      prefix: `tc-${randomBytes(3).toString("hex")}`,
      timeoutMs: 5000,
      log: createLogger("silent"),
    });
    try {
      expect(await store.write(["k"], { a: 1 }, 0)).toBe(1);
      await expect(store.write(["k"], { a: 2 }, 0)).rejects.toMatchObject({ code: "conflict" });
      expect((await store.read(["k"]))?.data).toEqual({ a: 1 });
      expect(await store.ready()).toBe(true);
    } finally {
      store.close();
      await vault.close();
    }
  }, 180_000);
});
