import { randomBytes } from "node:crypto";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseholdError } from "../../sidecar/errors.js";
import { createLogger } from "../../sidecar/logger.js";
import { VaultStore } from "../../sidecar/secrets/index.js";
import { vaultTransport } from "../../sidecar/secrets/vault-transport.js";
import { freePort } from "../support/free-port.js";
import { startVaultDev, type VaultDevServer } from "../vault-dev/server.js";

/** leasehold's own Vault transport (node:http under node-vault) against the dev server. */

const log = createLogger("silent");
const ROOT = `root-${randomBytes(6).toString("hex")}`;

let active: VaultDevServer;
let standby: VaultDevServer;
let second: VaultDevServer;
const agents = {
  httpAgent: new HttpAgent({ keepAlive: true }),
  httpsAgent: new HttpsAgent({ keepAlive: true }),
};
const send = vaultTransport(agents).defaults({});
const stores: VaultStore[] = [];

function store(address: string, retries = 0): VaultStore {
  const s = new VaultStore({
    address,
    auth: { method: "token", token: ROOT },
    mount: "secret",
    prefix: "lh",
    timeoutMs: 5_000,
    retries,
    log,
  });
  stores.push(s);
  return s;
}

async function failure(p: Promise<unknown>): Promise<LeaseholdError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LeaseholdError);
  return err as LeaseholdError;
}

const path = () => ["t", randomBytes(4).toString("hex")];

beforeAll(async () => {
  // Three nodes of one "cluster": the same root token works on each.
  active = await startVaultDev({ rootToken: ROOT });
  standby = await startVaultDev({ rootToken: ROOT });
  second = await startVaultDev({ rootToken: ROOT });
});

afterAll(async () => {
  for (const s of stores) s.close();
  agents.httpAgent.destroy();
  await Promise.all([active.close(), standby.close(), second.close()]);
});

describe("vaultTransport: what node-vault reads back", () => {
  it("status, Vault's JSON body, and the request path; errors as Vault sent them", async () => {
    const missing = await send({
      method: "GET",
      uri: `${active.address}/v1/secret/data/lh/none-${randomBytes(3).toString("hex")}`,
      headers: { "X-Vault-Token": ROOT },
    });
    expect(missing.statusCode).toBe(404);
    expect(missing.body).toEqual({ errors: [] });
    expect(missing.request.path).toMatch(/^\/v1\/secret\/data\/lh\/none-/);
    const refused = await send({
      method: "GET",
      uri: `${active.address}/v1/secret/data/lh/x`,
      headers: { "X-Vault-Token": "not-a-token" },
    });
    expect(refused.statusCode).toBe(403);
    expect(JSON.stringify(refused.body)).toContain("permission denied");
    active.seal();
    try {
      const sealed = await send({
        method: "GET",
        uri: `${active.address}/v1/secret/data/lh/x`,
        headers: { "X-Vault-Token": ROOT },
      });
      expect(sealed).toMatchObject({ statusCode: 503, body: { errors: ["Vault is sealed"] } });
    } finally {
      active.unseal();
    }
  });

  it("sends a JSON body, answers a 204 with an empty body, and keeps the connection alive", async () => {
    const uri = `${active.address}/v1/secret/data/lh/t/${randomBytes(4).toString("hex")}`;
    const wrote = await send({
      method: "POST",
      uri,
      headers: { "X-Vault-Token": ROOT },
      json: { data: { a: 1 } },
    });
    expect(wrote).toMatchObject({ statusCode: 200, body: { data: { version: 1 } } });
    const gone = await send({
      method: "DELETE",
      uri: uri.replace("/data/", "/metadata/"),
      headers: { "X-Vault-Token": ROOT },
    });
    expect(gone).toMatchObject({ statusCode: 204, body: "" });
    // Both calls went over one kept-alive socket, now free for the next.
    const free = Object.values(agents.httpAgent.freeSockets).flat();
    expect(free.length).toBeGreaterThanOrEqual(1);
  });

  it("connection refused rejects with Node's ECONNREFUSED; the store reports it in leasehold's words", async () => {
    const port = await freePort();
    const err = await send({ method: "GET", uri: `http://127.0.0.1:${port}/v1/sys/health` }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "ECONNREFUSED" });
    const detail = (await failure(store(`http://127.0.0.1:${port}`).read(path()))).detail ?? "";
    expect(detail).toBe(`vault http://127.0.0.1:${port}: connection refused (ECONNREFUSED) (read)`);
  });

  it("gives up at its timeout (ETIMEDOUT) and the agent still serves the next call", async () => {
    active.setLatency(400);
    try {
      const err = await send({
        method: "GET",
        uri: `${active.address}/v1/sys/health`,
        timeout: 50,
      }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "ETIMEDOUT" });
    } finally {
      active.setLatency(0);
    }
    expect((await send({ method: "GET", uri: `${active.address}/v1/sys/health` })).statusCode).toBe(200);
  });
});

describe("vaultTransport: a standby's redirect", () => {
  it("follows one 307 to the active node with the same method, token, body and query", async () => {
    standby.setStandby(active.address);
    try {
      const viaStandby = store(standby.address);
      const p = path();
      expect(await viaStandby.write(p, { v: 1 }, 0)).toBe(1);
      expect((await viaStandby.read(p))?.data).toEqual({ v: 1 });
      expect(await viaStandby.list(["t"])).toContain(p[1]);
      // The write landed on the active node, not on the standby.
      expect((await store(active.address).read(p))?.data).toEqual({ v: 1 });
      standby.setStandby(undefined);
      expect(await store(standby.address).read(p)).toBeNull();
    } finally {
      standby.setStandby(undefined);
    }
  });

  it("does not follow a second redirect: fails closed, naming it, and nothing is written", async () => {
    standby.setStandby(second.address);
    second.setStandby(active.address);
    const p = path();
    try {
      const err = await failure(store(standby.address).write(p, { v: 1 }));
      expect(err.code).toBe("upstream_unavailable");
      expect(err.detail).toBe(
        `vault ${standby.address}: redirect not followed: a second redirect (HTTP 307) (write)`,
      );
      expect(err.detail).not.toContain(ROOT);
    } finally {
      standby.setStandby(undefined);
      second.setStandby(undefined);
    }
    expect(await store(active.address).read(p)).toBeNull();
    expect(await store(second.address).read(p)).toBeNull();
  });

  it("does not follow a redirect to another scheme (no request is made there)", async () => {
    const httpsActive = active.address.replace(/^http:/, "https:");
    standby.setStandby(httpsActive);
    try {
      const err = await failure(store(standby.address).read(path()));
      expect(err.code).toBe("upstream_unavailable");
      // Not "TLS handshake failed": the https address was never contacted.
      expect(err.detail).toBe(
        `vault ${standby.address}: redirect not followed: HTTP 307 to ${httpsActive} changes the scheme (read)`,
      );
    } finally {
      standby.setStandby(undefined);
    }
  });

  it("a redirect to a node that refuses connections is a connection fault, retried then upstream_unavailable", async () => {
    const port = await freePort();
    standby.setStandby(`http://127.0.0.1:${port}`);
    try {
      const err = await failure(store(standby.address, 1).read(path()));
      expect(err.code).toBe("upstream_unavailable");
      expect(err.detail).toBe(`vault ${standby.address}: connection refused (ECONNREFUSED) (read)`);
    } finally {
      standby.setStandby(undefined);
    }
  });
});
