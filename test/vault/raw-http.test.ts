/**
 * The dev server driven with raw HTTP: every expected status, body and header here
 * comes from VAULT-API.md (the §8.3 conformance list and the sections it cites).
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type VaultDevServer, startVaultDev } from "../vault-dev/server.js";
import {
  AUTH_KEYS,
  ENVELOPE_KEYS,
  RAW_ENVELOPE_KEYS,
  type RawCallOptions,
  type RawResponse,
  keyOrder,
  rawCall,
} from "./raw-call.js";

const ROOT = `raw-root-${randomUUID()}`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PERMISSION_DENIED = '{"errors":["permission denied"]}\n';
const ACL_DENIED = '{"errors":["1 error occurred:\\n\\t* permission denied\\n\\n"]}\n';
const EMPTY_ERRORS = '{"errors":[]}\n';

interface Envelope {
  request_id: string;
  data: Record<string, unknown> | null;
  warnings: string[] | null;
  auth: Record<string, unknown> | null;
  wrap_info: Record<string, unknown> | null;
}

let dev: VaultDevServer;

/** As root. */
function call(method: string, path: string, options: RawCallOptions = {}): Promise<RawResponse> {
  return rawCall(dev.address, method, path, { token: ROOT, ...options });
}

function unique(name: string): string {
  return `raw-${name}-${randomUUID().slice(0, 8)}`;
}

function envelopeOf(res: RawResponse): Envelope {
  return res.json as Envelope;
}

/** A token with the given policies, created by root. */
async function childToken(body: Record<string, unknown>): Promise<string> {
  const res = await call("POST", "/v1/auth/token/create", { body });
  expect(res.status).toBe(200);
  return String(envelopeOf(res).auth?.client_token);
}

async function write(key: string, data: Record<string, unknown>, server = dev): Promise<RawResponse> {
  return rawCall(server.address, "POST", `/v1/secret/data/${key}`, { token: ROOT, body: { data } });
}

beforeAll(async () => {
  dev = await startVaultDev({
    rootToken: ROOT,
    policies: {
      "kv-reader": 'path "secret/data/readable/*" {\n  capabilities = ["read"]\n}\n',
    },
    approleRoles: {
      "raw-role": {
        roleId: "raw-role-id",
        secretId: "raw-secret-id",
        policies: ["kv-reader"],
        tokenTtl: 600,
      },
    },
  });
});

afterAll(async () => {
  await dev.close();
});

describe("1. write and check-and-set", () => {
  it("answers a write with 200, the version metadata, Vault's envelope order and headers", async () => {
    const res = await call("POST", `/v1/secret/data/${unique("w")}`, {
      body: { data: { b: 1, a: "x" }, options: { cas: 0 } },
    });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/json");
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(res.text.endsWith("}\n")).toBe(true);
    expect(keyOrder(res.text)).toEqual(ENVELOPE_KEYS);
    const body = envelopeOf(res);
    expect(body.request_id).toMatch(UUID);
    expect(res.json).toMatchObject({
      lease_id: "",
      renewable: false,
      lease_duration: 0,
      wrap_info: null,
      warnings: null,
      auth: null,
      mount_type: "kv",
    });
    expect(Object.keys(body.data ?? {})).toEqual([
      "created_time",
      "custom_metadata",
      "deletion_time",
      "destroyed",
      "version",
    ]);
    expect(body.data).toMatchObject({
      custom_metadata: null,
      deletion_time: "",
      destroyed: false,
      version: 1,
    });
    expect(Date.parse(String(body.data?.created_time))).not.toBeNaN();
  });

  it("refuses cas:0 on an existing key and a stale cas with the plugin's exact text", async () => {
    const key = unique("cas");
    expect(
      (await call("POST", `/v1/secret/data/${key}`, { body: { data: { v: 1 }, options: { cas: 0 } } }))
        .status,
    ).toBe(200);
    const again = await call("POST", `/v1/secret/data/${key}`, {
      body: { data: { v: 2 }, options: { cas: 0 } },
    });
    expect(again.status).toBe(400);
    expect(again.text).toBe('{"errors":["check-and-set parameter did not match the current version"]}\n');
    const numericString = await call("POST", `/v1/secret/data/${key}`, {
      body: { data: { v: 2 }, options: { cas: "1" } },
    });
    expect(envelopeOf(numericString).data?.version).toBe(2);
    const garbage = await call("POST", `/v1/secret/data/${key}`, {
      body: { data: { v: 3 }, options: { cas: "x" } },
    });
    expect(garbage.status).toBe(400);
    expect(garbage.text).toBe('{"errors":["error parsing check-and-set parameter"]}\n');
  });

  it("requires cas when the key or the engine config demands it", async () => {
    const key = unique("casreq");
    expect((await call("POST", `/v1/secret/metadata/${key}`, { body: { cas_required: true } })).status).toBe(
      204,
    );
    const missing = await write(key, { v: 1 });
    expect(missing.status).toBe(400);
    expect(missing.text).toBe('{"errors":["check-and-set parameter required for this call"]}\n');

    const own = await startVaultDev({ rootToken: ROOT });
    try {
      const config = await rawCall(own.address, "POST", "/v1/secret/config", {
        token: ROOT,
        body: { cas_required: true },
      });
      expect(config.status).toBe(204);
      const res = await write("any", { v: 1 }, own);
      expect(res.status).toBe(400);
      expect(res.text).toBe('{"errors":["check-and-set parameter required for this call"]}\n');
      const forced = await rawCall(own.address, "POST", "/v1/secret/metadata/any", {
        token: ROOT,
        body: { cas_required: false },
      });
      expect(forced.status).toBe(200);
      expect(envelopeOf(forced).data).toBeNull();
      expect(envelopeOf(forced).warnings).toEqual([
        '"cas_required" set to false, but is mandated by backend config. This value will be ignored.',
      ]);
    } finally {
      await own.close();
    }
  });

  it("needs data, and warns about parameters it does not know", async () => {
    const noData = await call("POST", `/v1/secret/data/${unique("nodata")}`, { body: { options: {} } });
    expect(noData.status).toBe(400);
    expect(noData.text).toBe('{"errors":["no data provided"]}\n');
    const extra = await call("POST", `/v1/secret/data/${unique("extra")}`, {
      body: { data: { a: 1 }, zed: 1, foo: 2 },
    });
    expect(extra.status).toBe(200);
    expect(envelopeOf(extra).warnings).toEqual(["Endpoint ignored these unrecognized parameters: [foo zed]"]);
    const key = unique("captured");
    const captured = await call("POST", `/v1/secret/data/${key}`, {
      body: { data: { a: 1 }, path: "elsewhere" },
    });
    expect(envelopeOf(captured).warnings).toEqual([
      "Endpoint replaced the value of these parameters with the values captured from the endpoint's path: [path]",
    ]);
    expect((await call("GET", `/v1/secret/data/${key}`)).status).toBe(200);
  });
});

describe("2. read", () => {
  it("reads the latest and a given version, sorted keys, Go HTML escaping", async () => {
    const key = unique("read");
    await write(key, { z: 1, a: "<&>", m: { y: 1, b: 2 } });
    await write(key, { v: 2 });
    const latest = await call("GET", `/v1/secret/data/${key}`);
    expect(latest.status).toBe(200);
    expect(latest.json).toMatchObject({
      data: { data: { v: 2 }, metadata: { version: 2, destroyed: false } },
    });
    expect(Object.keys(envelopeOf(latest).data ?? {})).toEqual(["data", "metadata"]);
    const first = await call("GET", `/v1/secret/data/${key}?version=1`);
    expect(first.text).toContain('"data":{"data":{"a":"\\u003c\\u0026\\u003e","m":{"b":2,"y":1},"z":1}');
    expect(first.json).toMatchObject({ data: { metadata: { version: 1 } } });
  });

  it("answers 404 with an empty error list for an unknown version or key", async () => {
    const key = unique("read404");
    await write(key, { v: 1 });
    const unknownVersion = await call("GET", `/v1/secret/data/${key}?version=99`);
    expect(unknownVersion.status).toBe(404);
    expect(unknownVersion.text).toBe(EMPTY_ERRORS);
    const unknownKey = await call("GET", `/v1/secret/data/${unique("missing")}`);
    expect(unknownKey.status).toBe(404);
    expect(unknownKey.text).toBe(EMPTY_ERRORS);
  });
});

describe("3. delete, undelete, destroy", () => {
  it("soft-deletes the latest version, undeletes it, then destroys it", async () => {
    const key = unique("del");
    await write(key, { v: 1 });
    const deleted = await call("DELETE", `/v1/secret/data/${key}`);
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe("");
    expect(deleted.headers["content-type"]).toBe("application/json");
    expect(deleted.headers["cache-control"]).toBe("no-store");

    const afterDelete = await call("GET", `/v1/secret/data/${key}`);
    expect(afterDelete.status).toBe(404);
    expect(afterDelete.text.endsWith("\n")).toBe(false);
    expect(keyOrder(afterDelete.text)).toEqual(RAW_ENVELOPE_KEYS);
    const deletedData = envelopeOf(afterDelete).data ?? {};
    expect(deletedData.data).toBeNull();
    const deletedMetadata = (deletedData.metadata ?? {}) as Record<string, unknown>;
    expect(deletedMetadata).toMatchObject({ destroyed: false, version: 1 });
    expect(Date.parse(String(deletedMetadata.deletion_time))).not.toBeNaN();

    const undeleted = await call("POST", `/v1/secret/undelete/${key}`, { body: { versions: [1] } });
    expect(undeleted.status).toBe(204);
    const readable = await call("GET", `/v1/secret/data/${key}`);
    expect(readable.json).toMatchObject({ data: { data: { v: 1 }, metadata: { deletion_time: "" } } });

    const destroyed = await call("PUT", `/v1/secret/destroy/${key}`, { body: { versions: "1" } });
    expect(destroyed.status).toBe(204);
    const afterDestroy = await call("GET", `/v1/secret/data/${key}`);
    expect(afterDestroy.status).toBe(404);
    expect(afterDestroy.json).toMatchObject({
      data: { data: null, metadata: { destroyed: true, version: 1 } },
    });
  });

  it("needs versions, with the plugin's two spellings of the error", async () => {
    const key = unique("vers");
    const del = await call("POST", `/v1/secret/delete/${key}`, { body: { versions: [] } });
    expect(del.text).toBe('{"errors":["No version number provided"]}\n');
    const destroy = await call("POST", `/v1/secret/destroy/${key}`, { body: {} });
    expect(destroy.text).toBe('{"errors":["no version number provided"]}\n');
    const missingKey = await call("POST", `/v1/secret/delete/${key}`, { body: { versions: [1, 2] } });
    expect(missingKey.status).toBe(204);
  });
});

describe("4. patch", () => {
  it("merge-patches the current version into a new one", async () => {
    const key = unique("patch");
    await write(key, { a: 1, drop: "me", nested: { x: 1, y: 2 } });
    const patched = await call("PATCH", `/v1/secret/data/${key}`, {
      body: { data: { b: 2, drop: null, nested: { y: null, z: 3 } } },
      contentType: "application/merge-patch+json",
    });
    expect(patched.status).toBe(200);
    expect(envelopeOf(patched).data?.version).toBe(2);
    const read = await call("GET", `/v1/secret/data/${key}`);
    expect(envelopeOf(read).data?.data).toEqual({ a: 1, b: 2, nested: { x: 1, z: 3 } });
  });

  it("rejects other content types and answers 404 without a body for a missing key", async () => {
    const key = unique("patch415");
    await write(key, { a: 1 });
    const json = await call("PATCH", `/v1/secret/data/${key}`, { body: { data: { a: 2 } } });
    expect(json.status).toBe(415);
    expect(json.text).toBe(
      '{"errors":["PATCH requires Content-Type of application/merge-patch+json, provided application/json"]}\n',
    );
    const none = await call("PATCH", `/v1/secret/data/${key}`, { rawBody: "" });
    expect(none.status).toBe(400);
    expect(none.text).toBe('{"errors":["mime: no media type"]}\n');
    const missing = await call("PATCH", `/v1/secret/data/${unique("nokey")}`, {
      body: { data: { a: 1 } },
      contentType: "application/merge-patch+json",
    });
    expect(missing.status).toBe(404);
    expect(missing.text).toBe("");
    expect(missing.headers["content-type"]).toBe("application/json");
  });

  it("answers 404 with the flat version metadata when the current version is deleted", async () => {
    const key = unique("patchdel");
    await write(key, { a: 1 });
    await call("DELETE", `/v1/secret/data/${key}`);
    const res = await call("PATCH", `/v1/secret/data/${key}`, {
      body: { data: { a: 2 } },
      contentType: "application/merge-patch+json",
    });
    expect(res.status).toBe(404);
    expect(envelopeOf(res).data).toMatchObject({ destroyed: false, version: 1 });
    expect(envelopeOf(res).data).not.toHaveProperty("metadata");
  });
});

describe("5. list", () => {
  it("lists direct children, folders with '/', byte-wise sorted, through LIST and GET ?list=", async () => {
    const prefix = unique("list");
    for (const name of ["b", "a/x", "a", "B", "a/deeper/y"]) await write(`${prefix}/${name}`, { v: 1 });
    const expected = { data: { keys: ["B", "a", "a/", "b"] } };
    const viaList = await call("LIST", `/v1/secret/metadata/${prefix}`);
    expect(viaList.status).toBe(200);
    expect(viaList.headers["cache-control"]).toBe("no-store");
    expect(viaList.json).toMatchObject(expected);
    expect(keyOrder(viaList.text)).toEqual(ENVELOPE_KEYS);
    expect((await call("GET", `/v1/secret/metadata/${prefix}/?list=true`)).json).toMatchObject(expected);
    expect((await call("GET", `/v1/secret/metadata/${prefix}?list=1`)).json).toMatchObject(expected);
    expect((await call("LIST", `/v1/secret/metadata/${prefix}/a`)).json).toMatchObject({
      data: { keys: ["deeper/", "x"] },
    });
  });

  it("answers 404 for an empty prefix and 400 for a bad list value", async () => {
    const empty = await call("LIST", `/v1/secret/metadata/${unique("nothing")}`);
    expect(empty.status).toBe(404);
    expect(empty.text).toBe(EMPTY_ERRORS);
    const bad = await call("GET", "/v1/secret/metadata/x?list=maybe");
    expect(bad.status).toBe(400);
    expect(bad.text).toBe(EMPTY_ERRORS);
  });
});

describe("6. metadata and version pruning", () => {
  it("writes, patches, reads and deletes key metadata", async () => {
    const key = unique("meta");
    const written = await call("POST", `/v1/secret/metadata/${key}`, {
      body: { custom_metadata: { owner: "jdoe", tier: 1 }, max_versions: 3, delete_version_after: "1h" },
    });
    expect(written.status).toBe(204);
    const afterWrite = await write(key, { v: 1 });
    expect(envelopeOf(afterWrite).data?.custom_metadata).toEqual({ owner: "jdoe", tier: "1" });
    const deletion = String(envelopeOf(afterWrite).data?.deletion_time);
    expect(Date.parse(deletion)).toBeGreaterThan(Date.now());
    expect((await call("GET", `/v1/secret/data/${key}`)).status).toBe(200);

    const patched = await call("PATCH", `/v1/secret/metadata/${key}`, {
      body: { custom_metadata: { owner: null, team: "db" } },
      contentType: "application/merge-patch+json",
    });
    expect(patched.status).toBe(204);
    const meta = await call("GET", `/v1/secret/metadata/${key}`);
    expect(meta.status).toBe(200);
    expect(Object.keys(envelopeOf(meta).data ?? {})).toEqual([
      "cas_required",
      "created_time",
      "current_version",
      "custom_metadata",
      "delete_version_after",
      "max_versions",
      "oldest_version",
      "updated_time",
      "versions",
    ]);
    expect(meta.json).toMatchObject({
      data: {
        cas_required: false,
        current_version: 1,
        custom_metadata: { team: "db", tier: "1" },
        delete_version_after: "1h0m0s",
        max_versions: 3,
        oldest_version: 0,
        versions: { "1": { deletion_time: deletion, destroyed: false } },
      },
    });

    expect((await call("DELETE", `/v1/secret/metadata/${key}`)).status).toBe(204);
    const gone = await call("GET", `/v1/secret/metadata/${key}`);
    expect(gone.status).toBe(404);
    expect(gone.text).toBe(EMPTY_ERRORS);
    expect((await call("GET", `/v1/secret/data/${key}`)).status).toBe(404);
  });

  it("creates nothing when no known field is given, and validates custom_metadata", async () => {
    const key = unique("meta-empty");
    expect((await call("POST", `/v1/secret/metadata/${key}`, { body: { unknown: 1 } })).status).toBe(204);
    expect((await call("GET", `/v1/secret/metadata/${key}`)).status).toBe(404);
    const invalid = await call("POST", `/v1/secret/metadata/${key}`, {
      body: { custom_metadata: { "": "x" } },
    });
    expect(invalid.status).toBe(400);
    expect(invalid.text).toBe(
      '{"errors":["1 error occurred:\\n\\t* custom_metadata validation failed: length of key \\"\\" is 0 but must be 0 \\u003c len(key) \\u003c= 128\\n\\n"]}\n',
    );
  });

  it("keeps 10 versions by default: the 11th write prunes version 1", async () => {
    const key = unique("prune");
    for (let i = 1; i <= 11; i++) await write(key, { i });
    const meta = await call("GET", `/v1/secret/metadata/${key}`);
    const data = envelopeOf(meta).data ?? {};
    expect(data.oldest_version).toBe(2);
    expect(data.current_version).toBe(11);
    expect(
      Object.keys(data.versions as object)
        .map(Number)
        .sort((a, b) => a - b),
    ).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const pruned = await call("GET", `/v1/secret/data/${key}?version=1`);
    expect(pruned.status).toBe(404);
    expect(pruned.text).toBe(EMPTY_ERRORS);
  });

  it("prunes at the larger of the key's and the engine's max_versions", async () => {
    const own = await startVaultDev({ rootToken: ROOT });
    try {
      const key = "pruned";
      await rawCall(own.address, "POST", `/v1/secret/metadata/${key}`, {
        token: ROOT,
        body: { max_versions: 2 },
      });
      for (let i = 1; i <= 4; i++) await write(key, { i }, own);
      let meta = await rawCall(own.address, "GET", `/v1/secret/metadata/${key}`, { token: ROOT });
      expect(Object.keys(envelopeOf(meta).data?.versions as object).sort()).toEqual(["3", "4"]);

      await rawCall(own.address, "POST", "/v1/secret/config", { token: ROOT, body: { max_versions: 3 } });
      const config = await rawCall(own.address, "GET", "/v1/secret/config", { token: ROOT });
      expect(config.json).toMatchObject({
        data: { cas_required: false, delete_version_after: "0s", max_versions: 3 },
      });
      await write(key, { i: 5 }, own);
      meta = await rawCall(own.address, "GET", `/v1/secret/metadata/${key}`, { token: ROOT });
      expect(Object.keys(envelopeOf(meta).data?.versions as object).sort()).toEqual(["3", "4", "5"]);
      expect(envelopeOf(meta).data?.oldest_version).toBe(3);
    } finally {
      await own.close();
    }
  });
});

describe("7. wrong paths on a KV v2 mount", () => {
  it("answers KV v1-style paths with a raw 404 envelope carrying the warning", async () => {
    const key = unique("v1style");
    const get = await call("GET", `/v1/secret/${key}`);
    expect(get.status).toBe(404);
    expect(get.text.endsWith("\n")).toBe(false);
    expect(keyOrder(get.text)).toEqual(RAW_ENVELOPE_KEYS);
    expect(get.json).toMatchObject({
      data: null,
      warnings: [
        "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation.",
      ],
    });
    expect(get.json).not.toHaveProperty("errors");
    const put = await call("POST", `/v1/secret/${key}`, { body: { a: 1 } });
    expect(envelopeOf(put).warnings?.[0]).toContain("'vault kv put'");
    const trailingSlash = await call("GET", `/v1/secret/data/${key}/`);
    expect(trailingSlash.status).toBe(404);
    expect(envelopeOf(trailingSlash).warnings?.[0]).toContain("'vault kv get'");
    const root = await call("GET", "/v1/secret/data");
    expect(envelopeOf(root).warnings).toEqual([
      "Non-listing operations on the root of a K/V v2 mount are not supported.",
    ]);
  });
});

describe("8. tokens and ACL denials", () => {
  it("answers 403 permission denied without a token, and the invalid-token form for a bad one", async () => {
    const anonymous = await rawCall(dev.address, "GET", `/v1/secret/data/${unique("x")}`);
    expect(anonymous.status).toBe(403);
    expect(anonymous.text).toBe(PERMISSION_DENIED);
    const bogus = await rawCall(dev.address, "GET", "/v1/secret/data/x", { token: "hvs.bogus" });
    expect(bogus.status).toBe(403);
    expect(bogus.text).toBe(
      '{"errors":["2 errors occurred:\\n\\t* permission denied\\n\\t* invalid token\\n\\n"]}\n',
    );
  });

  it("denies what a policy does not grant with the multierror body, and allows what it grants", async () => {
    const key = unique("acl");
    await write(`readable/${key}`, { ok: true });
    await write(`hidden/${key}`, { ok: false });
    const token = await childToken({ policies: ["kv-reader"] });
    const allowed = await rawCall(dev.address, "GET", `/v1/secret/data/readable/${key}`, { token });
    expect(allowed.status).toBe(200);
    const denied = await rawCall(dev.address, "GET", `/v1/secret/data/hidden/${key}`, { token });
    expect(denied.status).toBe(403);
    expect(denied.text).toBe(ACL_DENIED);
    const writeDenied = await rawCall(dev.address, "POST", `/v1/secret/data/readable/${key}`, {
      token,
      body: { data: { x: 1 } },
    });
    expect(writeDenied.text).toBe(ACL_DENIED);
    const unknownMount = await rawCall(dev.address, "GET", "/v1/nomount/x", { token });
    expect(unknownMount.status).toBe(403);
  });

  it("accepts Authorization: Bearer, with X-Vault-Token taking precedence", async () => {
    const bearer = await rawCall(dev.address, "GET", "/v1/auth/token/lookup-self", {
      headers: { Authorization: `Bearer ${ROOT}` },
    });
    expect(bearer.status).toBe(200);
    const both = await rawCall(dev.address, "GET", "/v1/auth/token/lookup-self", {
      token: "hvs.bogus",
      headers: { Authorization: `Bearer ${ROOT}` },
    });
    expect(both.status).toBe(403);
  });
});

describe("9. health and seal status", () => {
  it("reports an active node with Vault's field order", async () => {
    const health = await rawCall(dev.address, "GET", "/v1/sys/health");
    expect(health.status).toBe(200);
    expect(health.headers["cache-control"]).toBe("no-store");
    expect(keyOrder(health.text)).toEqual([
      "initialized",
      "sealed",
      "standby",
      "performance_standby",
      "replication_performance_mode",
      "replication_dr_mode",
      "server_time_utc",
      "version",
      "enterprise",
      "cluster_name",
      "cluster_id",
      "echo_duration_ms",
      "clock_skew_ms",
      "replication_primary_canary_age_ms",
    ]);
    expect(health.json).toMatchObject({ initialized: true, sealed: false, standby: false });
    const head = await rawCall(dev.address, "HEAD", "/v1/sys/health");
    expect(head.status).toBe(200);
    expect(head.text).toBe("");
    expect((await rawCall(dev.address, "GET", "/v1/sys/health?activecode=abc")).text).toBe(EMPTY_ERRORS);
    expect((await rawCall(dev.address, "POST", "/v1/sys/health")).status).toBe(405);
    const seal = await rawCall(dev.address, "GET", "/v1/sys/seal-status");
    expect(seal.status).toBe(200);
    expect(seal.json).toMatchObject({
      type: "shamir",
      initialized: true,
      sealed: false,
      t: 1,
      n: 1,
      progress: 0,
    });
    expect(keyOrder(seal.text).slice(0, 10)).toEqual([
      "type",
      "initialized",
      "sealed",
      "t",
      "n",
      "progress",
      "nonce",
      "version",
      "build_date",
      "migration",
    ]);
  });

  it("answers 503 while sealed, on health (standby, no cluster fields) and on logical paths", async () => {
    const own = await startVaultDev({ rootToken: ROOT });
    try {
      own.seal();
      const health = await rawCall(own.address, "GET", "/v1/sys/health");
      expect(health.status).toBe(503);
      expect(health.json).toMatchObject({ initialized: true, sealed: true, standby: true });
      expect(health.json).not.toHaveProperty("cluster_name");
      expect(health.json).not.toHaveProperty("cluster_id");
      expect((await rawCall(own.address, "GET", "/v1/sys/health?sealedcode=200")).status).toBe(200);
      const seal = await rawCall(own.address, "GET", "/v1/sys/seal-status");
      expect(seal.status).toBe(200);
      expect(seal.json).toMatchObject({ sealed: true });
      expect(seal.json).not.toHaveProperty("cluster_name");
      const logical = await rawCall(own.address, "GET", "/v1/secret/data/x", { token: ROOT });
      expect(logical.status).toBe(503);
      expect(logical.text).toBe('{"errors":["Vault is sealed"]}\n');
      own.unseal();
      expect((await rawCall(own.address, "GET", "/v1/sys/health")).status).toBe(200);
      expect((await rawCall(own.address, "GET", "/v1/secret/data/x", { token: ROOT })).status).toBe(404);
    } finally {
      await own.close();
    }
  });
});

describe("10. token endpoints", () => {
  it("looks up the root token", async () => {
    const res = await call("GET", "/v1/auth/token/lookup-self");
    expect(res.status).toBe(200);
    const data = envelopeOf(res).data ?? {};
    expect(Object.keys(data)).toEqual([...Object.keys(data)].sort());
    expect(data).toMatchObject({
      creation_ttl: 0,
      display_name: "root",
      entity_id: "",
      expire_time: null,
      explicit_max_ttl: 0,
      id: ROOT,
      meta: null,
      num_uses: 0,
      orphan: true,
      path: "auth/token/root",
      policies: ["root"],
      ttl: 0,
      type: "service",
    });
    expect(String(data.accessor)).toMatch(/^[0-9A-Za-z]{24}$/);
  });

  it("creates a token with the auth block and warnings for unknown policies", async () => {
    const res = await call("POST", "/v1/auth/token/create", {
      body: { policies: ["zz-unknown", "kv-reader"], ttl: "1h", meta: { user: "armon" } },
    });
    expect(res.status).toBe(200);
    const body = envelopeOf(res);
    expect(body.data).toBeNull();
    expect(body.warnings).toEqual(['Policy "zz-unknown" does not exist']);
    expect(Object.keys(body.auth ?? {})).toEqual(AUTH_KEYS);
    expect(body.auth).toMatchObject({
      policies: ["default", "kv-reader", "zz-unknown"],
      token_policies: ["default", "kv-reader", "zz-unknown"],
      metadata: { user: "armon" },
      lease_duration: 3600,
      renewable: true,
      entity_id: "",
      token_type: "service",
      orphan: false,
      mfa_requirement: null,
      num_uses: 0,
    });
  });

  it("renews only renewable tokens with a lease", async () => {
    const root = await call("POST", "/v1/auth/token/renew-self");
    expect(root.status).toBe(400);
    expect(root.text).toBe('{"errors":["invalid lease ID"]}\n');
    const renewable = await childToken({ policies: ["default"], ttl: "1h" });
    const renewed = await rawCall(dev.address, "POST", "/v1/auth/token/renew-self", {
      token: renewable,
      body: { increment: "2h" },
    });
    expect(renewed.status).toBe(200);
    expect(envelopeOf(renewed).data).toBeNull();
    expect(envelopeOf(renewed).auth).toMatchObject({
      client_token: renewable,
      lease_duration: 7200,
      renewable: true,
    });
    const fixed = await childToken({ policies: ["default"], ttl: "1h", renewable: false });
    const refused = await rawCall(dev.address, "POST", "/v1/auth/token/renew-self", { token: fixed });
    expect(refused.text).toBe('{"errors":["lease is not renewable"]}\n');
    const wrongVerb = await call("GET", "/v1/auth/token/renew-self");
    expect(wrongVerb.status).toBe(405);
    expect(wrongVerb.text).toBe('{"errors":["1 error occurred:\\n\\t* unsupported operation\\n\\n"]}\n');
  });

  it("revokes itself with 204, after which the token is refused", async () => {
    const token = await childToken({ policies: ["default"] });
    const revoked = await rawCall(dev.address, "POST", "/v1/auth/token/revoke-self", { token, body: {} });
    expect(revoked.status).toBe(204);
    expect(revoked.text).toBe("");
    const after = await rawCall(dev.address, "GET", "/v1/auth/token/lookup-self", { token });
    expect(after.status).toBe(403);
    expect(after.text).toContain("permission denied");
  });

  it("counts uses: the last allowed use revokes the token", async () => {
    const token = await childToken({ policies: ["default"], num_uses: 2 });
    const first = await rawCall(dev.address, "GET", "/v1/auth/token/lookup-self", { token });
    expect(envelopeOf(first).data?.num_uses).toBe(1);
    expect((await rawCall(dev.address, "GET", "/v1/auth/token/lookup-self", { token })).status).toBe(200);
    expect((await rawCall(dev.address, "GET", "/v1/auth/token/lookup-self", { token })).status).toBe(403);
    const restricted = await childToken({ num_uses: 3 });
    const child = await rawCall(dev.address, "POST", "/v1/auth/token/create", {
      token: restricted,
      body: {},
    });
    expect(child.text).toBe('{"errors":["restricted use token cannot generate child tokens"]}\n');
  });
});

describe("11. AppRole and JWT login", () => {
  it("logs in with AppRole, giving an orphan token with metadata.role_name; a stale token is ignored", async () => {
    const res = await rawCall(dev.address, "POST", "/v1/auth/approle/login", {
      token: "hvs.stale-and-revoked",
      body: { role_id: "raw-role-id", secret_id: "raw-secret-id" },
    });
    expect(res.status).toBe(200);
    const auth = envelopeOf(res).auth ?? {};
    expect(Object.keys(auth)).toEqual(AUTH_KEYS);
    expect(auth).toMatchObject({
      policies: ["default", "kv-reader"],
      metadata: { role_name: "raw-role" },
      lease_duration: 600,
      renewable: true,
      orphan: true,
      token_type: "service",
    });
    expect(String(auth.entity_id)).toMatch(UUID);
    const lookup = await rawCall(dev.address, "GET", "/v1/auth/token/lookup-self", {
      token: String(auth.client_token),
    });
    expect(lookup.json).toMatchObject({
      data: { path: "auth/approle/login", meta: { role_name: "raw-role" } },
    });
  });

  it("refuses bad AppRole credentials with Vault's texts", async () => {
    const login = (body: Record<string, unknown>): Promise<RawResponse> =>
      rawCall(dev.address, "POST", "/v1/auth/approle/login", { body });
    expect((await login({ role_id: "nope", secret_id: "x" })).text).toBe('{"errors":["invalid role ID"]}\n');
    expect((await login({ secret_id: "x" })).text).toBe('{"errors":["missing role_id"]}\n');
    expect((await login({ role_id: "raw-role-id" })).text).toBe('{"errors":["missing secret_id"]}\n');
    expect((await login({ role_id: "raw-role-id", secret_id: "wrong" })).text).toBe(
      '{"errors":["invalid secret id"]}\n',
    );
  });

  it("issues role IDs and new secret IDs through the helper endpoints", async () => {
    const roleId = await call("GET", "/v1/auth/approle/role/raw-role/role-id");
    expect(roleId.json).toMatchObject({ data: { role_id: "raw-role-id" } });
    const secret = await call("POST", "/v1/auth/approle/role/raw-role/secret-id");
    const secretId = String(envelopeOf(secret).data?.secret_id);
    const login = await rawCall(dev.address, "POST", "/v1/auth/approle/login", {
      body: { role_id: "raw-role-id", secret_id: secretId },
    });
    expect(login.status).toBe(200);
  });

  it("refuses a JWT login for an unknown role", async () => {
    const res = await rawCall(dev.address, "POST", "/v1/auth/jwt/login", {
      body: { role: "x", jwt: "a.b.c" },
    });
    expect(res.status).toBe(400);
    expect(res.text).toBe('{"errors":["role \\"x\\" could not be found"]}\n');
    const noRole = await rawCall(dev.address, "POST", "/v1/auth/jwt/login", { body: { jwt: "a.b.c" } });
    expect(noRole.text).toBe('{"errors":["missing role"]}\n');
  });
});

describe("12. response wrapping", () => {
  it("wraps a response and unwraps it exactly once", async () => {
    const key = unique("wrap");
    await write(key, { zip: "zap" });
    const wrapped = await call("GET", `/v1/secret/data/${key}`, { headers: { "X-Vault-Wrap-TTL": "60s" } });
    expect(wrapped.status).toBe(200);
    const body = envelopeOf(wrapped);
    expect(body.request_id).toBe("");
    expect(body.data).toBeNull();
    expect(Object.keys(body.wrap_info ?? {})).toEqual([
      "token",
      "accessor",
      "ttl",
      "creation_time",
      "creation_path",
    ]);
    expect(body.wrap_info).toMatchObject({ ttl: 60, creation_path: `secret/data/${key}` });
    const wrapToken = String(body.wrap_info?.token);

    const unwrapped = await rawCall(dev.address, "POST", "/v1/sys/wrapping/unwrap", { token: wrapToken });
    expect(unwrapped.status).toBe(200);
    expect(unwrapped.json).toMatchObject({ data: { data: { zip: "zap" }, metadata: { version: 1 } } });
    expect(envelopeOf(unwrapped).request_id).toMatch(UUID);
    const again = await rawCall(dev.address, "POST", "/v1/sys/wrapping/unwrap", { token: wrapToken });
    expect(again.status).toBe(400);
    expect(again.text).toBe('{"errors":["wrapping token is not valid or does not exist"]}\n');
  });

  it("unwraps with another token naming the wrapping token in the body; refuses a negative TTL", async () => {
    const key = unique("wrap2");
    await write(key, { a: 1 });
    const wrapped = await call("GET", `/v1/secret/data/${key}`, { headers: { "X-Vault-Wrap-TTL": "300" } });
    const wrapToken = String(envelopeOf(wrapped).wrap_info?.token);
    const unwrapped = await call("POST", "/v1/sys/wrapping/unwrap", { body: { token: wrapToken } });
    expect(unwrapped.json).toMatchObject({ data: { data: { a: 1 } } });
    const negative = await call("GET", `/v1/secret/data/${key}`, { headers: { "X-Vault-Wrap-TTL": "-5" } });
    expect(negative.status).toBe(400);
    expect(negative.text).toBe(
      '{"errors":["error parsing X-Vault-Wrap-TTL header: requested wrap ttl cannot be negative"]}\n',
    );
  });
});

describe("transport rules of §1", () => {
  it("answers outside /v1/, unknown verbs, bad JSON and unknown mounts as Vault does", async () => {
    expect((await call("GET", "/v2/secret/data/x")).text).toBe(EMPTY_ERRORS);
    const unknownVerb = await call("FROB", "/v1/secret/data/x");
    expect(unknownVerb.status).toBe(405);
    expect(unknownVerb.text).toBe(EMPTY_ERRORS);
    const options = await call("OPTIONS", "/v1/secret/data/x");
    expect(options.status).toBe(405);
    const badJson = await call("POST", "/v1/secret/data/x", {
      rawBody: "{not json",
      contentType: "application/json",
    });
    expect(badJson.status).toBe(400);
    expect(badJson.text).toBe('{"errors":["error parsing JSON"]}\n');
    const noMount = await call("GET", "/v1/nomount/x");
    expect(noMount.status).toBe(404);
    expect(noMount.text).toBe(
      '{"errors":["no handler for route \\"nomount/x\\". route entry not found."]}\n',
    );
  });

  it("decodes percent-escapes in the path and accepts form bodies", async () => {
    const key = unique("enc");
    await write(`${key}/a b`, { v: 1 });
    expect((await call("GET", `/v1/secret/data/${key}%2Fa%20b`)).status).toBe(200);
    const form = await call("POST", "/v1/auth/token/create", {
      rawBody: "policies=default&ttl=30m",
      contentType: "application/x-www-form-urlencoded",
    });
    expect(envelopeOf(form).auth).toMatchObject({ policies: ["default"], lease_duration: 1800 });
  });
});
