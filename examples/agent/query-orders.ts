/**
 * An example agent: checks out a PostgreSQL credential from leasehold for one task, runs one
 * query with it, reports the tool call, and gives the credential back (the sidecar then rotates
 * the password, so what this process saw is dead).
 *
 *   LEASEHOLD_URL=http://127.0.0.1:7733 LEASEHOLD_AGENT_KEY=./trust/example.org_agent_a.key.jwk \
 *     npx tsx examples/agent/query-orders.ts
 *
 * Environment: LEASEHOLD_URL or LEASEHOLD_SOCKET (where the sidecar listens), LEASEHOLD_AGENT_KEY
 * (the agent's key file from `leasehold agent keygen`), LEASEHOLD_RESOURCE (default orders-db),
 * TASK_ID (default TICKET-123). Prints one JSON line: the lease id and the query's result.
 */
import { createClient, toolCallDigest } from "leasehold/client";
import pg from "pg";

const SQL = "select count(*)::int as orders, coalesce(sum(total), 0)::text as total from orders";

function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === "" ? undefined : v;
}

async function main(): Promise<void> {
  const keyFile = env("LEASEHOLD_AGENT_KEY");
  if (keyFile === undefined) throw new Error("LEASEHOLD_AGENT_KEY is required");
  const socketPath = env("LEASEHOLD_SOCKET");
  const client = createClient(
    socketPath === undefined
      ? { url: env("LEASEHOLD_URL") ?? "http://127.0.0.1:7733", keyFile }
      : { socketPath, keyFile },
  );

  const out = await client.withCredential(
    env("LEASEHOLD_RESOURCE") ?? "orders-db",
    {
      task: { id: env("TASK_ID") ?? "TICKET-123", description: "monthly revenue report" },
      intent: { action: "read", tool: "psql" },
      ttl: 60,
    },
    async (cred, lease) => {
      await cred.reportToolCall({
        tool: "psql",
        action: "read",
        target: "orders",
        digest: toolCallDigest(SQL),
      });
      const db = new pg.Client({
        host: String(cred.connection.host ?? "127.0.0.1"),
        port: Number(cred.connection.port ?? 5432),
        database: String(cred.connection.database ?? "postgres"),
        user: cred.username,
        password: cred.password,
      });
      await db.connect();
      try {
        const { rows } = await db.query<{ orders: number; total: string }>(SQL);
        return { lease: lease.id, account: lease.account, result: rows[0] };
      } finally {
        await db.end();
      }
    },
  );
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err: unknown) => {
  const e = err as { code?: string; message?: string };
  process.stderr.write(`agent: ${e.code ? `${e.code}: ` : ""}${e.message ?? String(err)}\n`);
  process.exitCode = 1;
});
