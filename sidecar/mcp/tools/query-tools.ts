import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { rowLimit } from "../runners/bounds.js";
import { runLdapSearch } from "../runners/ldap-runner.js";
import { type RunnerLogin, TargetError } from "../runners/login.js";
import { runMysql } from "../runners/mysql-runner.js";
import { runPostgres } from "../runners/postgres-runner.js";
import { runRedis } from "../runners/redis-runner.js";
import {
  ldapSearchInput,
  ldapSearchOutput,
  redisCommandInput,
  redisCommandOutput,
  sqlQueryInput,
  sqlQueryOutput,
} from "../schemas.js";
import type { Held, McpSession } from "../session.js";
import { ok, run } from "../tool-result.js";

/** The tools that use a lease on its target: sql_query, redis_command, ldap_search. */
export function registerQueryTools(server: McpServer, session: McpSession): void {
  server.registerTool(
    "sql_query",
    {
      title: "Run SQL",
      description:
        "Run one SQL statement on a checked-out PostgreSQL or MySQL/MariaDB resource. Rows are capped (max_rows, and a size limit); truncated says when they were cut.",
      inputSchema: sqlQueryInput,
      outputSchema: sqlQueryOutput,
      annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: false },
    },
    async (args) =>
      run(async () => {
        const h = await session.recordOn(args.lease_id, "sql_query", args);
        const login = await session.loginOf(h);
        const kind = sqlKind(h, login);
        if (kind === undefined) throw notFor(h, "sql_query");
        const req = {
          sql: args.sql,
          params: args.params,
          maxRows: rowLimit(args.max_rows),
          database: args.database,
        };
        return ok(kind === "postgres" ? await runPostgres(login, req) : await runMysql(login, req));
      }, args.lease_id),
  );

  server.registerTool(
    "redis_command",
    {
      title: "Run a Redis command",
      description:
        "Send one command to a checked-out Redis resource (as its ACL user). Arrays are capped at max_rows items; truncated says when cut.",
      inputSchema: redisCommandInput,
      outputSchema: redisCommandOutput,
      annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: false },
    },
    async (args) =>
      run(async () => {
        const h = await session.recordOn(args.lease_id, "redis_command", args);
        if (h.adapter !== undefined && !h.adapter.startsWith("redis")) throw notFor(h, "redis_command");
        const login = await session.loginOf(h);
        if (login.kind === "credential" && adapterGuess(login.connection) !== "redis")
          throw notFor(h, "redis_command");
        return ok(
          await runRedis(login, { command: args.command, args: args.args, maxRows: rowLimit(args.max_rows) }),
        );
      }, args.lease_id),
  );

  server.registerTool(
    "ldap_search",
    {
      title: "Search LDAP",
      description:
        "Search a checked-out LDAP resource, bound as its account. Entries are capped at max_rows; password attributes are never returned.",
      inputSchema: ldapSearchInput,
      outputSchema: ldapSearchOutput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async (args) =>
      run(async () => {
        const h = await session.recordOn(args.lease_id, "ldap_search", args);
        if (h.adapter !== undefined && h.adapter !== "ldap") throw notFor(h, "ldap_search");
        const login = await session.loginOf(h);
        if (login.kind === "credential" && adapterGuess(login.connection) !== "ldap")
          throw notFor(h, "ldap_search");
        return ok(
          await runLdapSearch(login, {
            base: args.base,
            scope: args.scope,
            filter: args.filter,
            attributes: args.attributes,
            maxRows: rowLimit(args.max_rows),
          }),
        );
      }, args.lease_id),
  );
}

/** The target's kind as its revealed connection settings show it (when the catalog did not say). */
function adapterGuess(
  c: Readonly<Record<string, unknown>>,
): "postgres" | "mysql" | "redis" | "ldap" | undefined {
  if (typeof c.url === "string" && /^ldaps?:/i.test(c.url)) return "ldap";
  if ("persist" in c || c.port === 6379) return "redis";
  if (typeof c.database === "string" || c.port === 5432) return "postgres";
  if (typeof c.host === "string") return "mysql";
  return undefined;
}

/** Which SQL runner a lease takes: the catalog's adapter, else PostgreSQL's listener, else the connection's look. */
function sqlKind(h: Held, login: RunnerLogin): "postgres" | "mysql" | undefined {
  if (h.adapter === "postgres" || h.adapter === "mysql") return h.adapter;
  if (h.adapter !== undefined) return undefined;
  if (login.kind === "proxy") return "postgres";
  const g = adapterGuess(login.connection);
  return g === "postgres" || g === "mysql" ? g : undefined;
}

function notFor(h: Held, tool: string): TargetError {
  return new TargetError(
    `lease ${h.handle.lease.id} is for ${h.handle.lease.resource}${h.adapter ? ` (${h.adapter})` : ""}, which ${tool} does not serve; use the tool of its kind`,
  );
}
