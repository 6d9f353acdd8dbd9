import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { checkinOutput, leaseIdInput, leaseOutput, renewInput } from "../schemas.js";
import { type Held, isEnded, type McpSession } from "../session.js";
import { leaseView, ok, run } from "../tool-result.js";

/** The tools on a held lease: renew, lease_status, checkin. */
export function registerLeaseTools(server: McpServer, session: McpSession): void {
  server.registerTool(
    "renew",
    {
      title: "Renew a lease",
      description: "Extend a lease (never past its max_expires_at).",
      inputSchema: renewInput,
      outputSchema: leaseOutput,
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    },
    async (args) =>
      run(async () => {
        const h = await session.recordOn(args.lease_id, "renew", args);
        return ok(leaseView(await h.handle.renew(args.ttl), h.session));
      }, args.lease_id),
  );

  server.registerTool(
    "lease_status",
    {
      title: "Lease status",
      description: "Read a lease again: its state and when it expires.",
      inputSchema: leaseIdInput,
      outputSchema: leaseOutput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async (args) =>
      run(async () => {
        const h = await session.recordOn(args.lease_id, "lease_status", args);
        return ok(leaseView(await h.handle.status(), h.session));
      }, args.lease_id),
  );

  server.registerTool(
    "checkin",
    {
      title: "Check in a lease",
      description:
        "Give the account back when done; its password is rotated next. The lease id is then no longer usable.",
      inputSchema: leaseIdInput,
      outputSchema: checkinOutput,
      annotations: {
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: true,
        openWorldHint: false,
      },
    },
    async (args) =>
      run(async () => {
        let h: Held;
        try {
          h = await session.recordOn(args.lease_id, "checkin", args);
        } catch (err) {
          // An ended lease is still checked in (it resolves); anything else stops here.
          const ended = session.held.get(args.lease_id);
          if (!isEnded(err) || ended === undefined) throw err;
          h = ended;
        }
        await h.handle.checkin();
        session.held.delete(args.lease_id);
        session.log(`lease ${args.lease_id} checked in`);
        const lease = h.handle.lease;
        return ok({
          lease_id: args.lease_id,
          state: "ended" as const,
          ...(lease.end_reason ? { end_reason: lease.end_reason } : {}),
          note: "checked in; the account's password is rotated next",
        });
      }, args.lease_id),
  );
}
