import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { McpSession } from "./session.js";
import { leaseView } from "./tool-result.js";

/** What the server tells a client at `initialize`. */
export const INSTRUCTIONS =
  "leasehold lends you database, Redis and LDAP accounts for one task at a time. " +
  "Call list_resources, then checkout (resource, task_id, intent), then sql_query / redis_command / " +
  "ldap_search with the lease_id, then checkin when done (the account's password is rotated). " +
  "You never see a password or token: the tools log in for you.";

/** The `leasehold://leases` resource (this session's leases) and the `use-a-database` prompt. */
export function registerGuide(server: McpServer, session: McpSession): void {
  server.registerResource(
    "leases",
    "leasehold://leases",
    {
      title: "Leases held in this session",
      description: "The leases this MCP session holds, as last seen (no password, no token).",
      mimeType: "application/json",
    },
    async (uri) => ({
      contents: [
        {
          uri: uri.href,
          mimeType: "application/json",
          text: JSON.stringify(
            { leases: [...session.held.values()].map((h) => leaseView(h.handle.lease, h.session)) },
            null,
            2,
          ),
        },
      ],
    }),
  );

  server.registerPrompt(
    "use-a-database",
    {
      title: "Use a database through leasehold",
      description: "How to check out a resource, query it and give it back.",
      argsSchema: {
        resource: z.string().optional().describe("the resource to use, if known"),
        task_id: z.string().optional().describe("the task id (a ticket)"),
      },
    },
    (args) => ({
      messages: [
        { role: "user", content: { type: "text", text: useADatabase(args.resource, args.task_id) } },
      ],
    }),
  );
}

function useADatabase(resource: string | undefined, task: string | undefined): string {
  const r = resource ?? "<a resource from list_resources>";
  const t = task ?? "<your task or ticket id>";
  return [
    "You can use databases, Redis and LDAP through leasehold's tools. You never see a password: the tools log in for you.",
    "",
    "1. list_resources: see what you may check out and its kind (postgres, mysql, redis-acl, ldap).",
    `2. checkout {"resource": "${r}", "task_id": "${t}", "intent": "read"}: say what you will do (read, write, …); policy decides.`,
    "   If a human must approve, the call waits and reports progress; tell the user to ask an operator.",
    '3. sql_query {"lease_id": "<from checkout>", "sql": "select …", "params": [...]} (PostgreSQL uses $1, MySQL ?);',
    "   redis_command {lease_id, command, args}; ldap_search {lease_id, base, scope, filter, attributes}.",
    "   Results are capped (max_rows); truncated: true says there was more: narrow the query.",
    "4. renew {lease_id} if the work takes longer than the lease; lease_status {lease_id} to see its expiry.",
    "5. checkin {lease_id} as soon as you are done: the account's password is rotated.",
    "",
    "A tool error says what to do next: a policy denial (try another intent, or ask an operator), an expired lease (check out again), a statement the listener refuses (do it another way).",
  ].join("\n");
}
