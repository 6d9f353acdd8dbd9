import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RevealedCredential } from "../../sidecar/client/revealed-credential.js";
import { answerError, createTransport } from "../../sidecar/client/transport.js";
import {
  createClient,
  identityFetch,
  LeaseholdClientError,
  toolCallDigest,
} from "../../sidecar/client/index.js";
import { generateAgentKey } from "../../sidecar/identity/index.js";
import { toolCallSchema } from "../../sidecar/service/index.js";

/** A plain HTTP server that records what arrived and answers with a fixed status and body. */
function recorder(status: number, body: unknown) {
  const seen: IncomingMessage[] = [];
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    let data = "";
    req.on("data", (d: Buffer) => {
      data += d.toString();
    });
    req.on("end", () => {
      seen.push(req);
      bodies.push(data);
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    });
  });
  return { server, seen, bodies };
}

const listen = (server: Server, where: number | string) =>
  new Promise<void>((resolve) => {
    if (typeof where === "string") server.listen(where, resolve);
    else server.listen(where, "127.0.0.1", resolve);
  });

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-client-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("createClient", () => {
  it("needs exactly one of url and socketPath, and a key file", () => {
    expect(() => createClient({ keyFile: "k" })).toThrow(/exactly one of url and socketPath/);
    expect(() => createClient({ keyFile: "k", url: "http://127.0.0.1:1", socketPath: "/x" })).toThrow(
      /exactly one/,
    );
    expect(() => createClient({ keyFile: "", url: "http://127.0.0.1:1" })).toThrow(/keyFile/);
    expect(() => createClient({ keyFile: "k", url: "ftp://127.0.0.1" })).toThrow(/http/);
  });

  it("reports an unreachable sidecar as a typed, retryable error", async () => {
    const { keyFile } = await generateAgentKey({ id: "spiffe://example.org/agent/sdk", outDir: dir });
    const client = createClient({ url: "http://127.0.0.1:1", keyFile });
    const err = await client
      .checkout("orders-db", { task: { id: "T" }, intent: { action: "read" } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeaseholdClientError);
    expect((err as LeaseholdClientError).code).toBe("unreachable");
    expect((err as LeaseholdClientError).retryable).toBe(true);
  });
});

describe("transport", () => {
  it("over TCP: sends the CSRF header and JSON, and names the origin in htu", async () => {
    const r = recorder(200, { ok: true });
    await listen(r.server, 0);
    const port = (r.server.address() as { port: number }).port;
    try {
      const t = createTransport({ url: `http://127.0.0.1:${port}` });
      expect(t.htu("/v1/leases/lse_1/credential?x=1")).toBe(
        `http://127.0.0.1:${port}/v1/leases/lse_1/credential`,
      );
      const res = await t.send({ method: "DELETE", path: "/v1/leases/lse_1", timeoutMs: 5000 });
      expect(res).toMatchObject({ status: 200, json: { ok: true } });
      const post = await t.send({ method: "POST", path: "/v1/checkout", body: { a: 1 }, timeoutMs: 5000 });
      expect(post.status).toBe(200);
      const [del, created] = r.seen;
      expect(del?.headers["x-leasehold-request"]).toBe("true");
      expect(del?.headers["content-type"]).toBeUndefined();
      expect(created?.headers["content-type"]).toBe("application/json");
      expect(r.bodies[1]).toBe('{"a":1}');
    } finally {
      r.server.close();
    }
  });

  it("over a Unix socket: Host is localhost, and so is the htu", async () => {
    const r = recorder(409, {
      error: { code: "resource_busy", message: "busy", request_id: "req_1", retry_after: 1 },
    });
    const socketPath = join(dir, "t.sock");
    await listen(r.server, socketPath);
    try {
      const t = createTransport({ socketPath });
      expect(t.htu("/v1/checkout")).toBe("http://localhost/v1/checkout");
      const res = await t.send({ method: "GET", path: "/v1/leases/lse_1", timeoutMs: 5000 });
      expect(r.seen[0]?.headers.host).toBe("localhost");
      const err = answerError(res);
      expect(err).toMatchObject({ code: "resource_busy", status: 409, requestId: "req_1", retryAfter: 1 });
      expect(err.retryable).toBe(true);
    } finally {
      r.server.close();
    }
  });

  it("refuses a non-JSON answer as bad_response", async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200);
      res.end("<html>");
    });
    await listen(server, 0);
    try {
      const t = createTransport({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}` });
      const err = await t.send({ method: "GET", path: "/", timeoutMs: 5000 }).catch((e: unknown) => e);
      expect((err as LeaseholdClientError).code).toBe("bad_response");
    } finally {
      server.close();
    }
  });
});

describe("the revealed credential", () => {
  it("never shows its password when logged, serialized or spread", () => {
    const password = "s3cret-password-value-123";
    const lease = {
      lease: { expires_at: "2030-01-01T00:00:00.000Z" },
    } as unknown as ConstructorParameters<typeof RevealedCredential>[1];
    const cred = new RevealedCredential(
      { username: "app_1", password, connection: { host: "db" } },
      lease,
      new AbortController().signal,
    );
    expect(cred.password).toBe(password);
    expect(cred.username).toBe("app_1");
    expect(cred.expiresAt.toISOString()).toBe("2030-01-01T00:00:00.000Z");
    expect(JSON.stringify(cred).includes(password)).toBe(false);
    expect(inspect(cred, { depth: 5 }).includes(password)).toBe(false);
    expect(JSON.stringify({ ...cred }).includes(password)).toBe(false);
    expect(Object.keys(cred)).not.toContain("password");
  });
});

describe("toolCallDigest", () => {
  it("is sha256: and the hex digest, and passes the sidecar's tool-call schema", () => {
    const d = toolCallDigest("select 1");
    expect(d).toBe(`sha256:${createHash("sha256").update("select 1").digest("hex")}`);
    expect(toolCallDigest({ a: 1 })).toBe(toolCallDigest('{"a":1}'));
    expect(toolCallDigest(new Uint8Array([1, 2]))).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(toolCallSchema.safeParse({ tool: "psql", action: "read", digest: d }).success).toBe(true);
  });
});

describe("identityFetch", () => {
  it("signs a fresh identity assertion of the key's agent for every request, keeping the caller's headers", async () => {
    const r = recorder(200, { ok: true });
    await listen(r.server, 0);
    const port = (r.server.address() as { port: number }).port;
    try {
      const { keyFile } = await generateAgentKey({ id: "spiffe://example.org/agent/mcp", outDir: dir });
      const f = identityFetch({ keyFile });
      await f(`http://127.0.0.1:${port}/mcp`, { method: "POST", headers: { "mcp-session-id": "s1" } });
      await f(`http://127.0.0.1:${port}/mcp`, { method: "POST" });
      const auth = r.seen.map((req) => String(req.headers.authorization));
      expect(auth[0]).toMatch(/^Bearer eyJ/);
      expect(auth[1]).toMatch(/^Bearer eyJ/);
      expect(auth[0]).not.toBe(auth[1]);
      const claims = JSON.parse(Buffer.from(String(auth[0]).split(".")[1] ?? "", "base64url").toString()) as {
        sub: string;
        aud: string;
        jti: string;
      };
      expect(claims).toMatchObject({ sub: "spiffe://example.org/agent/mcp", aud: "leasehold" });
      expect(r.seen[0]?.headers["mcp-session-id"]).toBe("s1");
    } finally {
      r.server.close();
    }
  });

  it("needs a key file, and names one it cannot sign with", async () => {
    expect(() => identityFetch({ keyFile: "" })).toThrow(/keyFile/);
    const err = await identityFetch({ keyFile: join(dir, "missing.jwk") })("http://127.0.0.1:1/").catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LeaseholdClientError);
    expect((err as LeaseholdClientError).code).toBe("bad_key");
  });
});
