import { describe, expect, it } from "vitest";
import type { StoredRegistration } from "../../sidecar/resources/types.js";
import { catalogEntry } from "../../sidecar/service/agent-catalog.js";

const reg = (over: Partial<StoredRegistration>): StoredRegistration => ({
  name: "orders-db",
  adapter: "postgres",
  connection: { host: "db.internal", port: 5432 },
  rotateWith: "admin",
  admin: { username: "lh_admin" },
  accounts: ["app_orders_1"],
  reveal: true,
  lease: { defaultTtl: 300, maxTtl: 3600 },
  rotation: { length: 32, terminateSessions: true, exclude: "" },
  groups: ["databases"],
  registered_at: "2026-01-01T00:00:00.000Z",
  ...over,
});

describe("catalogEntry: a registration as the agent's catalog shows it", () => {
  it("names the session kind: the listener where there is one, else the credential", () => {
    expect(catalogEntry(reg({}), false)?.session).toBe("credential");
    expect(catalogEntry(reg({ proxy: { port: 0 } }), true)?.session).toBe("proxy");
    expect(catalogEntry(reg({ reveal: false, proxy: { port: 0 } }), true)?.session).toBe("proxy");
  });

  it("leaves out a resource whose password is never revealed when this sidecar runs no listener for it", () => {
    // Nothing the agent could use here: listing it would mislead a model into checking it out.
    expect(catalogEntry(reg({ reveal: false }), false)).toBeUndefined();
  });

  it("shows no connection setting, account or admin; the description only when there is one", () => {
    expect(catalogEntry(reg({}), false)).toEqual({
      name: "orders-db",
      adapter: "postgres",
      groups: ["databases"],
      session: "credential",
    });
    expect(catalogEntry(reg({ description: "Orders (primary)" }), false)).toMatchObject({
      description: "Orders (primary)",
    });
  });
});
