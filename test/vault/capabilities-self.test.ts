/**
 * The dev server's `sys/capabilities-self`, as Vault's `handleCapabilities` answers: the
 * caller's own capabilities on each path, sorted, `["root"]` for root, `["deny"]` where no rule
 * grants anything, the data copied to the top level, `capabilities` for a single path.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startVaultDev, type VaultDevServer } from "../vault-dev/server.js";
import { rawCall } from "./raw-call.js";

const ROOT = `caps-root-${randomUUID()}`;
let dev: VaultDevServer;

beforeAll(async () => {
  dev = await startVaultDev({ rootToken: ROOT });
});
afterAll(async () => {
  await dev?.close();
});

async function tokenWith(policy: string): Promise<string> {
  const name = `caps-${randomUUID().slice(0, 8)}`;
  expect(
    (await rawCall(dev.address, "PUT", `/v1/sys/policy/${name}`, { token: ROOT, body: { policy } })).status,
  ).toBe(204);
  const res = await rawCall(dev.address, "POST", "/v1/auth/token/create", {
    token: ROOT,
    body: { policies: [name] },
  });
  return String((res.json as { auth: { client_token: string } }).auth.client_token);
}

describe("vault-dev sys/capabilities-self", () => {
  it("reports each path's capabilities for a policy token, sorted, deny where nothing is granted", async () => {
    const token = await tokenWith(
      'path "secret/data/app/*" { capabilities = ["update", "read", "create"] }\npath "secret/metadata/app/*" { capabilities = ["list"] }\npath "secret/data/app/locked" { capabilities = ["deny"] }\n',
    );
    const paths = [
      "secret/data/app/x",
      "secret/metadata/app/",
      "secret/data/other",
      "secret/data/app/locked",
    ];
    const res = await rawCall(dev.address, "POST", "/v1/sys/capabilities-self", { token, body: { paths } });
    expect(res.status).toBe(200);
    const body = res.json as Record<string, unknown> & { data: Record<string, unknown> };
    const want = {
      "secret/data/app/x": ["create", "read", "update"],
      "secret/metadata/app/": ["list"],
      "secret/data/other": ["deny"],
      "secret/data/app/locked": ["deny"],
    };
    expect(body.data).toEqual(want);
    // sys/capabilities* is in Vault's injectDataIntoTopRoutes: the keys are also at the top.
    expect(body["secret/data/app/x"]).toEqual(want["secret/data/app/x"]);
    expect(body.data.capabilities).toBeUndefined();
  });

  it("answers root for a root token, adds `capabilities` for one path, and takes the deprecated `path`", async () => {
    const res = await rawCall(dev.address, "POST", "/v1/sys/capabilities-self", {
      token: ROOT,
      body: { path: "secret/data/anything" },
    });
    expect(res.status).toBe(200);
    expect((res.json as { data: unknown }).data).toEqual({
      "secret/data/anything": ["root"],
      capabilities: ["root"],
    });
  });

  it("refuses a request without paths (400) and a caller without a token (403)", async () => {
    const token = await tokenWith('path "secret/data/x" { capabilities = ["read"] }\n');
    const none = await rawCall(dev.address, "POST", "/v1/sys/capabilities-self", { token, body: {} });
    expect(none.status).toBe(400);
    expect(none.json).toEqual({ errors: ["paths must be supplied"] });
    const anonymous = await rawCall(dev.address, "POST", "/v1/sys/capabilities-self", {
      body: { paths: ["a"] },
    });
    expect(anonymous.status).toBe(403);
  });
});
