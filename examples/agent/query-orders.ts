/**
 * An example agent: checks out a PostgreSQL credential from leasehold for one task, runs one
 * query with it, and gives the credential back (the sidecar then rotates the password, so what
 * this process saw is dead). Two modes:
 *
 * - reveal (default): `withCredential` reveals the account's password, the agent connects to
 *   the database itself and reports its tool call;
 * - proxy (`LEASEHOLD_MODE=proxy`, for a `reveal: false` resource): `withConnection` gives the
 *   login at the sidecar's listener (lease id and lease token); the password never reaches
 *   this process, and the listener audits every session.
 *
 *   LEASEHOLD_ADDR=http://127.0.0.1:7733 LEASEHOLD_AGENT_KEY=./trust/example.org_agent_a.key.jwk \
 *     npx tsx examples/agent/query-orders.ts
 *
 * Environment: LEASEHOLD_ADDR (or LEASEHOLD_SOCKET; LEASEHOLD_URL is an alias) and
 * LEASEHOLD_AGENT_KEY, read by `createClient()` itself; LEASEHOLD_RESOURCE (default orders-db),
 * LEASEHOLD_MODE (reveal or proxy), TASK_ID (default TICKET-123). Prints one JSON line: the
 * lease id, the account and the query's result.
 */
import { createClient, toolCallDigest } from "leasehold/client";
import pg from "pg";

const SQL = "select count(*)::int as orders, coalesce(sum(total), 0)::text as total from orders";

function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === "" ? undefined : v;
}

interface Row {
  orders: number;
  total: string;
}

async function query(
  login: { host: string; port: number; user: string; password: string },
  database: string,
) {
  const db = new pg.Client({ ...login, password: login.password, database });
  await db.connect();
  try {
    return (await db.query<Row>(SQL)).rows[0];
  } finally {
    await db.end();
  }
}

async function main(): Promise<void> {
  // LEASEHOLD_ADDR / LEASEHOLD_SOCKET and LEASEHOLD_AGENT_KEY: createClient reads them.
  const client = createClient();
  const resource = env("LEASEHOLD_RESOURCE") ?? "orders-db";
  const request = {
    task: { id: env("TASK_ID") ?? "TICKET-123", description: "monthly revenue report" },
    intent: { action: "read", tool: "psql" },
    ttl: 60,
  };

  const out =
    env("LEASEHOLD_MODE") === "proxy"
      ? await client.withConnection(resource, request, async (conn, lease) => ({
          lease: lease.id,
          account: lease.account,
          result: await query(conn, "postgres"),
        }))
      : await client.withCredential(resource, request, async (cred, lease) => {
          await cred.reportToolCall({
            tool: "psql",
            action: "read",
            target: "orders",
            digest: toolCallDigest(SQL),
          });
          const login = {
            host: String(cred.connection.host ?? "127.0.0.1"),
            port: Number(cred.connection.port ?? 5432),
            user: cred.username,
            password: cred.password,
          };
          const result = await query(login, String(cred.connection.database ?? "postgres"));
          return { lease: lease.id, account: lease.account, result };
        });
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err: unknown) => {
  const e = err as { code?: string; message?: string };
  process.stderr.write(`agent: ${e.code ? `${e.code}: ` : ""}${e.message ?? String(err)}\n`);
  process.exitCode = 1;
});
