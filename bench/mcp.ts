/**
 * What an MCP tool call adds over the same work done with the HTTP API directly (issue 21).
 * One sidecar (a real process: the test stack, with Redis, the Vault dev server and a private
 * PostgreSQL cluster). The product: the MCP SDK's own client driving `leasehold mcp` over stdio.
 * The floor: the agent SDK in this process calling the HTTP API for the same steps — checkout;
 * the first query (reveal, then connect, query and close, as `sql_query` does); a later query
 * (the password already held); the lease's status; check-in. The MCP side also writes a
 * `tool_call` audit record per call, which the floor does not: that is part of what it adds.
 * `npm run build` first (the MCP server runs from dist/). Prints p50 per step and the ratio;
 * `--capture` prints every JSON-RPC message of one lease's session first (size and start).
 */
import { randomBytes } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import pg from "pg";
import { createClient } from "../sidecar/client/index.js";
import { captureWire, type WireDirection } from "../test/support/mcp-wire.js";
import { cliPath } from "../test/support/sidecar-process.js";
import { startStack } from "../test/support/stack.js";
import { waitFor } from "../test/support/wait-for.js";
import { printTable, quick, type Row, summarize, writeResults } from "./stats.js";

const N = quick ? 25 : 150;
const WARMUP = 3;
const ACCOUNTS = 6;
const RESOURCE = "mcp-bench-db";
const POLICY = `@id("bench")\npermit (principal, action, resource) when { context.intent == "read" };\n`;
const STEPS = ["checkout", "first query", "later query", "lease status", "checkin"] as const;
type Step = (typeof STEPS)[number];

interface ToolAnswer {
  isError?: boolean;
  structuredContent?: Record<string, unknown>;
  content: Array<{ type: string; text?: string }>;
}

async function main(): Promise<void> {
  const stack = await startStack({ policy: POLICY });
  let mcp: Client | undefined;
  try {
    const roles = Array.from({ length: ACCOUNTS }, (_, i) => `mcp_bench_${i}`);
    for (const r of roles) await stack.createRole(r, randomBytes(12).toString("hex"));
    const file = join(stack.dir, `${RESOURCE}.json`);
    await writeFile(
      file,
      JSON.stringify({
        name: RESOURCE,
        adapter: "postgres",
        connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
        admin: { username: "leasehold_admin", password: stack.adminPassword },
        accounts: roles,
      }),
    );
    const reg = await stack.cli("resources", "register", "-f", file);
    if (reg.code !== 0) throw new Error(`register failed: ${reg.stderr}`);
    const admin = (await readFile(join(stack.dir, "state", "admin.token"), "utf8")).trim();
    const trust = await readdir(join(stack.dir, "trust"));
    const keyName = trust.find((n) => n.endsWith("a.key.jwk"));
    if (!keyName) throw new Error("no key file for agent a");
    const keyFile = join(stack.dir, "trust", keyName);

    /** Waits until an account is free again (check-in rotates it), so neither side waits inside a step. */
    const available = () =>
      waitFor(
        "a free account",
        async () => {
          const res = await fetch(`${stack.sidecar.url}/v1/resources/${RESOURCE}`, {
            headers: { authorization: `Bearer ${admin}` },
          });
          const body = (await res.json()) as { accounts?: Array<{ state: string }> };
          return (body.accounts ?? []).filter((a) => a.state === "available").length >= 2;
        },
        { intervalMs: 20 },
      );

    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [cliPath(), "mcp"],
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        LEASEHOLD_ADDR: stack.sidecar.url,
        LEASEHOLD_AGENT_KEY: keyFile,
      },
      stderr: "ignore",
    });
    // `--capture`: print every JSON-RPC message of the first lease's session (sizes, start of each).
    const capture = process.argv.includes("--capture");
    let capturing = capture;
    const show = (dir: WireDirection, m: JSONRPCMessage) => {
      if (!capturing) return;
      const text = JSON.stringify(m);
      process.stdout.write(
        `${dir} ${String(text.length).padStart(6)} B  ${text.slice(0, 400)}${text.length > 400 ? " …" : ""}\n`,
      );
    };
    captureWire(transport, show);
    mcp = new Client({ name: "mcp-bench", version: "1.0.0" });
    await mcp.connect(transport);

    const client = mcp;
    const tool = async (name: string, args: Record<string, unknown>) => {
      const r = (await client.callTool({ name, arguments: args })) as ToolAnswer;
      if (r.isError) throw new Error(`${name}: ${r.content.map((c) => c.text).join(" ")}`);
      return r.structuredContent ?? {};
    };
    const sdk = createClient({ url: stack.sidecar.url, keyFile });
    const SQL = "select 1 as one";

    const viaMcp = async (i: number, t: Record<Step, number[]>) => {
      const time = async <T>(step: Step, fn: () => Promise<T>): Promise<T> => {
        const s = performance.now();
        const out = await fn();
        t[step].push(performance.now() - s);
        return out;
      };
      const out = await time("checkout", () =>
        tool("checkout", { resource: RESOURCE, task_id: `BENCH-${i}`, intent: "read" }),
      );
      const id = String(out.lease_id);
      await time("first query", () => tool("sql_query", { lease_id: id, sql: SQL }));
      await time("later query", () => tool("sql_query", { lease_id: id, sql: SQL }));
      await time("lease status", () => tool("lease_status", { lease_id: id }));
      await time("checkin", () => tool("checkin", { lease_id: id }));
    };

    const viaHttp = async (i: number, t: Record<Step, number[]>) => {
      const time = async <T>(step: Step, fn: () => Promise<T>): Promise<T> => {
        const s = performance.now();
        const out = await fn();
        t[step].push(performance.now() - s);
        return out;
      };
      const lease = await time("checkout", () =>
        sdk.checkout(RESOURCE, { task: { id: `BENCH-${i}` }, intent: { action: "read" } }),
      );
      const query = async (cred: {
        username: string;
        password: string;
        connection: Record<string, unknown>;
      }) => {
        const c = new pg.Client({
          host: String(cred.connection.host),
          port: Number(cred.connection.port),
          database: String(cred.connection.database ?? "postgres"),
          user: cred.username,
          password: cred.password,
        });
        await c.connect();
        try {
          return await c.query(SQL);
        } finally {
          await c.end();
        }
      };
      const cred = await time("first query", async () => {
        const revealed = await lease.credential();
        await query(revealed);
        return revealed;
      });
      await time("later query", () => query(cred));
      await time("lease status", () => lease.status());
      await time("checkin", () => lease.checkin());
    };

    const empty = (): Record<Step, number[]> =>
      Object.fromEntries(STEPS.map((s) => [s, [] as number[]])) as unknown as Record<Step, number[]>;
    const product = empty();
    const floor = empty();
    if (capture) {
      await client.listTools();
      await viaMcp(-100, empty());
      capturing = false;
    }

    // Warm both paths, then alternate them so drift on a shared machine hits both alike.
    for (let i = 0; i < WARMUP; i++) {
      await available();
      await viaMcp(-i - 1, empty());
      await available();
      await viaHttp(-i - 1, empty());
    }
    for (let i = 0; i < N; i++) {
      await available();
      await viaMcp(i, product);
      await available();
      await viaHttp(i, floor);
    }

    const rows: Row[] = STEPS.map((step) => ({
      figure: `${step}, p50 (MCP tool vs HTTP API)`,
      product: summarize(product[step]).p50,
      floor: summarize(floor[step]).p50,
      unit: "ms",
      better: "lower" as const,
    }));
    printTable(`MCP over stdio vs the HTTP API, ${N} leases each, sequential`, rows);
    for (const r of rows) {
      process.stdout.write(`  ${r.figure.split(",")[0]}: +${(r.product - r.floor).toFixed(2)} ms per call\n`);
    }
    const file2 = writeResults("mcp", {
      n: N,
      steps: Object.fromEntries(
        STEPS.map((s) => [s, { mcp: summarize(product[s]), http: summarize(floor[s]) }]),
      ),
    });
    process.stdout.write(`results: ${file2}\n`);
  } finally {
    await mcp?.close().catch(() => undefined);
    await stack.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
