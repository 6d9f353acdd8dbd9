import { randomBytes } from "node:crypto";
import { basename } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CallerAttestation, ProcCallerAttestor } from "../../sidecar/attest/index.js";
import type { ProxyLeasePort, ProxyManager } from "../../sidecar/proxy/index.js";
import { type ScramPostgres, startScramPostgres } from "../support/pg-cluster.js";
import { type ProxyHarness, startProxyHarness } from "../proxy/harness.js";
import { start, toolEnv } from "../proxy/processes.js";
import { type PrivateRedis, startPrivateRedis } from "../proxy/redis-server.js";

let h: ProxyHarness;
let cluster: ScramPostgres;
let redis: PrivateRedis;
let proxy: ProxyManager;
/** What the listeners handed the lease service, attested while the login was being checked. */
const seen: Array<{ resource: string; caller: CallerAttestation | undefined }> = [];

beforeAll(async () => {
  const redisAdmin = randomBytes(18).toString("hex");
  const users = [
    `lc_admin on >${redisAdmin} ~* &* +@all`,
    `lc_r1 on >${randomBytes(12).toString("hex")} ~* &* +@all`,
  ];
  await Promise.all([
    startScramPostgres().then((c) => {
      cluster = c;
    }),
    startPrivateRedis(users).then((s) => {
      redis = s;
    }),
    startProxyHarness({ name: "attest-listeners" }).then((x) => {
      h = x;
    }),
  ]);
  const pgAdmin = randomBytes(18).toString("base64url");
  h.secrets.push(pgAdmin, redisAdmin, cluster.superuser.password);
  const su = new pg.Client({
    host: cluster.host,
    port: cluster.port,
    user: "postgres",
    password: cluster.superuser.password,
    database: "postgres",
  });
  await su.connect();
  await su.query(`CREATE ROLE lc_admin LOGIN CREATEROLE PASSWORD '${pgAdmin}'`);
  await su.query(`CREATE ROLE lc_app_1 LOGIN PASSWORD '${randomBytes(12).toString("hex")}'`);
  await su.end();
  await h.register({
    adapter: "redis-acl",
    name: "lc-redis",
    connection: { host: redis.host, port: redis.port },
    admin: { username: "lc_admin", password: redisAdmin },
    accounts: ["lc_r1"],
    reveal: false,
    rotation: { terminateSessions: false },
    proxy: { port: 0 },
  });
  await h.register({
    adapter: "postgres",
    name: "lc-pg",
    connection: { host: cluster.host, port: cluster.port, database: "postgres" },
    admin: { username: "lc_admin", password: pgAdmin },
    accounts: ["lc_app_1"],
    reveal: false,
    rotation: { terminateSessions: false },
    proxy: { port: 0 },
  });
  const node = h.node;
  const leases: ProxyLeasePort = {
    proxyCredential: async (token, leaseId, resource, meta) => {
      seen.push({ resource, caller: await meta.caller?.() });
      return node.leaseService.proxyCredential(token, leaseId, resource, meta);
    },
    tokenVerifier: (leaseId, resource) => node.leaseService.tokenVerifier(leaseId, resource),
  };
  proxy = await h.manager({ leases, attestor: new ProcCallerAttestor() });
}, 180_000);

afterAll(async () => {
  await h?.close();
  await Promise.allSettled([cluster?.stop(), redis?.stop()]);
});

describe("the listeners hand the lease service the attested client", () => {
  it("psql over TLS through the PostgreSQL listener is attested as the psql process (the TCP socket under TLS)", async () => {
    const ep = proxy.endpointFor("lc-pg");
    if (!ep) throw new Error("no listener");
    const lease = await h.checkout("lc-pg");
    const psql = start(
      "/usr/bin/psql",
      [
        `host=127.0.0.1 port=${ep.port} user=${lease.leaseId} dbname=postgres sslmode=require`,
        "-X",
        "-c",
        "select 1",
      ],
      toolEnv({ PGPASSWORD: lease.token, PGCONNECT_TIMEOUT: "10" }),
    );
    psql.child.stdin.end();
    const res = await psql.result;
    expect(res.code, res.stderr).toBe(0);
    const got = seen.find((s) => s.resource === "lc-pg")?.caller;
    expect(got).toMatchObject({
      attested: true,
      transport: "tcp",
      pid: psql.child.pid,
      uid: process.geteuid?.(),
    });
    expect(got?.attested && basename(got.exe)).toBe("psql");
  });

  it("redis-cli through the Redis listener is attested as the redis-cli process", async () => {
    const ep = proxy.endpointFor("lc-redis");
    if (!ep) throw new Error("no listener");
    const lease = await h.checkout("lc-redis");
    const cli = start(
      "redis-cli",
      ["-h", "127.0.0.1", "-p", String(ep.port), "--user", lease.leaseId, "--no-auth-warning", "PING"],
      toolEnv({ REDISCLI_AUTH: lease.token }),
    );
    cli.child.stdin.end();
    const res = await cli.result;
    expect(res.stdout.trim(), res.stderr).toBe("PONG");
    const got = seen.find((s) => s.resource === "lc-redis")?.caller;
    expect(got).toMatchObject({
      attested: true,
      transport: "tcp",
      pid: cli.child.pid,
      uid: process.geteuid?.(),
    });
    expect(got?.attested && basename(got.exe)).toBe("redis-cli");
  });
});
