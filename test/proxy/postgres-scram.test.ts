import { randomBytes } from "node:crypto";
import { createServer, connect, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scramVerifier } from "../../sidecar/leases/index.js";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { asSuperuser, type ScramPostgres } from "../support/pg-cluster.js";
import { type Checkout, listenerPort, type ProxyHarness } from "./harness.js";
import { leaseClient, pgResource, startPgProxy } from "./pg-setup.js";
import { run, toolEnv } from "./processes.js";
import { pgError, pgMessages, pgStartup, rawConnect, readUntil, readUntilClose } from "./wire.js";

/**
 * The PostgreSQL listener proves a client holds the lease token by SCRAM-SHA-256 against a
 * verifier stored at checkout (under the lease MAC key), so the token never crosses the wire;
 * it asks for the token in cleartext only over TLS, and only for a lease with no verifier.
 */

const RESOURCE = "ps-pg";

let h: ProxyHarness;
let cluster: ScramPostgres;
let proxy: ProxyManager;
let port = 0;

/** A TCP relay in front of the listener that keeps every byte the client sent. */
async function recordingRelay(target: number): Promise<{ port: number; sent: () => Buffer; server: Server }> {
  const chunks: Buffer[] = [];
  const server = createServer((c) => {
    const up = connect({ host: "127.0.0.1", port: target });
    c.on("data", (d: Buffer) => {
      chunks.push(d);
      up.write(d);
    });
    up.on("data", (d: Buffer) => c.write(d));
    c.on("close", () => up.destroy());
    up.on("close", () => c.destroy());
    c.on("error", () => undefined);
    up.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("no relay address");
  return { port: addr.port, sent: () => Buffer.concat(chunks), server };
}

function leaseKey(id: string): string {
  return `${h.prefix}{r:${RESOURCE}}:lease:${id}`;
}

/** Logs in with `password` and runs `select current_user`; resolves to the user or the SQLSTATE of the refusal. */
async function login(
  l: Checkout,
  password: string,
  config: Parameters<typeof leaseClient>[2] = {},
): Promise<string> {
  const c = leaseClient(l, config.port ?? port, { password, ...config });
  try {
    await c.connect();
    const r = await c.query<{ u: string }>("select current_user as u");
    return r.rows[0]?.u ?? "";
  } catch (err) {
    return `error ${(err as { code?: string }).code ?? (err as Error).message}`;
  } finally {
    await c.end().catch(() => undefined);
  }
}

const TLS = { ssl: { rejectUnauthorized: false } } as const;

beforeAll(async () => {
  const setup = await startPgProxy({ name: "proxy-pg-scram", admin: "ps_admin" });
  ({ h, cluster } = setup);
  await asSuperuser(cluster, async (c) => {
    for (let i = 1; i <= 10; i++) {
      await c.query(`CREATE ROLE ps_app_${i} LOGIN PASSWORD '${randomBytes(12).toString("hex")}'`);
    }
  });
  await h.register({
    ...pgResource(setup),
    name: RESOURCE,
    accounts: Array.from({ length: 10 }, (_, i) => `ps_app_${i + 1}`),
    proxy: { port: 0 },
  });
  proxy = await h.manager({ auditStatements: "none" });
  port = listenerPort(proxy, RESOURCE);
}, 120_000);

afterAll(async () => {
  await h?.close();
  await cluster?.stop();
});

describe("SCRAM-SHA-256 at the PostgreSQL listener", () => {
  it("asks for SCRAM-SHA-256 (no channel binding), never for a cleartext password, without TLS", async () => {
    const l = await h.checkout(RESOURCE);
    const s = await rawConnect(port);
    s.on("error", () => undefined);
    s.write(pgStartup({ user: l.leaseId, database: "postgres" }));
    const ask = pgMessages(await readUntil(s, (b) => b.length >= 9 && pgMessages(b).length > 0))[0];
    expect(ask?.type).toBe("R");
    expect(ask?.body.readInt32BE(0)).toBe(10);
    expect(ask?.body.subarray(4).toString("utf8")).toBe("SCRAM-SHA-256\0\0");
    s.destroy();
  });

  it("a pg client logs in without TLS and the token never crosses the wire", async () => {
    const l = await h.checkout(RESOURCE);
    const relay = await recordingRelay(port);
    try {
      expect(await login(l, l.token, { port: relay.port })).toBe(l.account);
      const sent = relay.sent();
      expect(sent.length).toBeGreaterThan(0);
      expect(sent.includes(Buffer.from(l.token))).toBe(false);
      // Not even the token's signature, the part that makes it a secret.
      const signature = l.token.split(".")[2] ?? "";
      expect(signature.length).toBeGreaterThan(20);
      expect(sent.includes(Buffer.from(signature))).toBe(false);
    } finally {
      relay.server.close();
    }
  });

  it("psql (libpq) logs in by SCRAM with sslmode=disable", async () => {
    const l = await h.checkout(RESOURCE);
    const out = await run(
      "/usr/bin/psql",
      [
        `host=127.0.0.1 port=${port} user=${l.leaseId} dbname=postgres sslmode=disable`,
        "-XAtc",
        "select current_user",
      ],
      toolEnv({ PGPASSWORD: l.token, PGCONNECT_TIMEOUT: "10" }),
    );
    expect(out.stdout.trim()).toBe(l.account);
  });

  it("a wrong token fails the proof with 28P01, and an unknown lease gets the same exchange and answer", async () => {
    const l = await h.checkout(RESOURCE);
    expect(await login(l, `${l.token}x`)).toBe("error 28P01");
    const ghost: Checkout = {
      leaseId: `lse_${randomBytes(12).toString("hex")}`,
      token: l.token,
      account: "",
    };
    const s = await rawConnect(port);
    s.on("error", () => undefined);
    s.write(pgStartup({ user: ghost.leaseId, database: "postgres" }));
    const ask = pgMessages(await readUntil(s, (b) => b.length >= 9 && pgMessages(b).length > 0))[0];
    expect(ask?.body.readInt32BE(0)).toBe(10);
    s.destroy();
    expect(await login(ghost, l.token)).toBe("error 28P01");
  });

  it("a verifier planted in Redis for a password the writer knows is refused (its MAC fails)", async () => {
    const l = await h.checkout(RESOURCE);
    const known = "the-writer-knows-this";
    const planted = await scramVerifier(known);
    await h.node.redis.hset(leaseKey(l.leaseId), "scram", JSON.stringify({ ...planted, mac: "forged" }));
    expect(await login(l, known)).toBe("error 28P01");
    // Without an intact verifier, the token itself is taken over TLS only, and checked in full.
    expect(await login(l, l.token)).toBe("error 28P01");
    expect(await login(l, known, TLS)).toBe("error 28P01");
    expect(await login(l, l.token, TLS)).toBe(l.account);
  });

  it("a verifier copied from another lease does not open this one", async () => {
    const a = await h.checkout(RESOURCE);
    const b = await h.checkout(RESOURCE);
    const fromA = await h.node.redis.hget(leaseKey(a.leaseId), "scram");
    expect(fromA).toBeTruthy();
    await h.node.redis.hset(leaseKey(b.leaseId), "scram", fromA as string);
    expect(await login(b, a.token)).toBe("error 28P01");
  });

  it("a proof counts only while the token's signing key would: the verifier names its kid", async () => {
    const l = await h.checkout(RESOURCE);
    const kid = JSON.parse(Buffer.from(l.token.split(".")[0] ?? "", "base64url").toString("utf8")).kid;
    const stored = await h.node.leaseService.tokenVerifier(l.leaseId, RESOURCE);
    expect(stored?.kid).toBe(kid);
    const meta = { requestId: "req_scram_kid" };
    const proof = { kind: "scram", leaseId: l.leaseId, resource: RESOURCE } as const;
    const ok = await h.node.leaseService.proxyCredential({ ...proof, kid }, l.leaseId, RESOURCE, meta);
    expect(ok.username).toBe(l.account);
    // A key since removed from the key file (and unpublished) no longer stands behind the proof.
    for (const gone of ["retired-key-kid", undefined]) {
      await expect(
        h.node.leaseService.proxyCredential({ ...proof, kid: gone }, l.leaseId, RESOURCE, meta),
      ).rejects.toThrow(/signing key unknown/);
    }
  });

  it("a client that insists on channel binding is refused with 08P01", async () => {
    const l = await h.checkout(RESOURCE);
    const s = await rawConnect(port);
    s.on("error", () => undefined);
    s.write(pgStartup({ user: l.leaseId, database: "postgres" }));
    await readUntil(s, (b) => pgMessages(b).length > 0);
    const done = readUntilClose(s);
    const data = Buffer.from("p=tls-server-end-point,,n=*,r=abcdefghijkl");
    const mech = Buffer.from("SCRAM-SHA-256-PLUS\0");
    const len = Buffer.alloc(4);
    len.writeInt32BE(data.length);
    const body = Buffer.concat([mech, len, data]);
    const head = Buffer.alloc(5);
    head[0] = 0x70;
    head.writeInt32BE(4 + body.length, 1);
    s.write(Buffer.concat([head, body]));
    expect(pgError(await done)?.C).toBe("08P01");
  });

  it("no token or password appears in the logs or the audit trail", async () => {
    expect(h.secrets.length).toBeGreaterThan(3);
    await h.expectNoSecretLeaked();
  });
});
