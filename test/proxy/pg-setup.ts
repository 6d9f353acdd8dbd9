import { randomBytes } from "node:crypto";
import pg from "pg";
import { asSuperuser, type ScramPostgres, startScramPostgres } from "../support/pg-cluster.js";
import { type Checkout, type ProxyHarness, startProxyHarness } from "./harness.js";

/** A private PostgreSQL cluster and a proxy harness, with an admin role the harness may register. */
export interface PgProxySetup {
  readonly h: ProxyHarness;
  readonly cluster: ScramPostgres;
  /** A `LOGIN CREATEROLE` role with a random password (in `h.secrets`). */
  readonly admin: { readonly username: string; readonly password: string };
}

/**
 * Starts a scram PostgreSQL cluster and a proxy harness side by side, records the superuser's
 * and the admin's passwords in `h.secrets`, and creates the admin role `admin`. Whatever started
 * is stopped again if any step fails, so a failing `beforeAll` leaves nothing behind.
 */
export async function startPgProxy(opts: {
  name: string;
  policy?: string;
  admin: string;
  /** Mirror the audit records to the Redis stream `<prefix>audit` too. */
  auditStream?: boolean;
}): Promise<PgProxySetup> {
  const [c, x] = await Promise.allSettled([
    startScramPostgres(),
    startProxyHarness({
      name: opts.name,
      ...(opts.policy === undefined ? {} : { policy: opts.policy }),
      ...(opts.auditStream ? { auditStream: true } : {}),
    }),
  ]);
  const cluster = c.status === "fulfilled" ? c.value : undefined;
  const h = x.status === "fulfilled" ? x.value : undefined;
  try {
    if (c.status === "rejected") throw c.reason;
    if (x.status === "rejected") throw x.reason;
    if (!cluster || !h) throw new Error("unreachable");
    const admin = { username: opts.admin, password: randomBytes(18).toString("base64url") };
    h.secrets.push(admin.password, cluster.superuser.password);
    await asSuperuser(cluster, (su) =>
      su.query(`CREATE ROLE ${admin.username} LOGIN CREATEROLE PASSWORD '${admin.password}'`),
    );
    return { h, cluster, admin };
  } catch (err) {
    await h?.close();
    await cluster?.stop();
    throw err;
  }
}

/**
 * The registration fields every PostgreSQL resource of these tests shares: the cluster's
 * `postgres` database, the admin, a sealed password, and sessions left to the proxy to close
 * (the adapter's termination is off).
 */
export function pgResource(setup: Pick<PgProxySetup, "cluster" | "admin">) {
  return {
    adapter: "postgres",
    connection: { host: setup.cluster.host, port: setup.cluster.port, database: "postgres" },
    admin: setup.admin,
    reveal: false,
    rotation: { terminateSessions: false },
  };
}

/**
 * A pg client (not connected) through a listener on 127.0.0.1:`port`, logging in with the
 * lease, on database `postgres` unless `config` says otherwise. Errors after a failed or
 * closed session are swallowed (tests read them from the promises or their own listener).
 */
export function leaseClient(l: Checkout, port: number, config: pg.ClientConfig = {}): pg.Client {
  const c = new pg.Client({
    host: "127.0.0.1",
    port,
    user: l.leaseId,
    password: l.token,
    database: "postgres",
    ...config,
  });
  c.on("error", () => undefined);
  return c;
}
