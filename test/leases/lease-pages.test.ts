import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseStore } from "../../sidecar/leases/index.js";
import type { RedisClient } from "../../sidecar/redis.js";
import { watchedCommands } from "../support/redis-monitor.js";
import { BACKENDS, type OpenBackend, type RedisBackend } from "./redis-backends.js";

/*
 * GET /v1/leases' contract: `next_cursor` is absent on the last page, a full one included. Each
 * backend gets its own prefix, so a listing of every resource sees only this file's leases.
 */

let n = 0;
const A = "spiffe://example.org/agent/page-a";
const B = "spiffe://example.org/agent/page-b";

/** How many lease records the scripts read (HGETALL) on every server while `work` ran. */
async function leaseReads(client: RedisClient, work: () => Promise<unknown>): Promise<number> {
  const seen = await watchedCommands(client, work);
  return seen.filter(
    (c) => c.source === "lua" && c.args[0]?.toLowerCase() === "hgetall" && c.args[1]?.includes(":lease:"),
  ).length;
}

function pageTests(backend: RedisBackend): void {
  describe(`lease pages on ${backend.name}`, () => {
    let open: OpenBackend;
    let store: LeaseStore;
    let raw: RedisClient;

    /** Checks out `count` leases of `resource` for `agent`, each on an account of its own. */
    const lease = async (resource: string, agent: string, count: number): Promise<string[]> => {
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        const account = `acct-${++n}`;
        await store.syncPool(
          resource,
          [...(await store.accounts(resource)).map((a) => a.name), account],
          "available",
        );
        const c = await store.checkout(
          {
            id: `lse_page${String(n).padStart(12, "0")}`,
            resource,
            agent,
            task: { id: "T" },
            intent: { action: "read" },
          },
          60_000 + n,
          120_000,
        );
        if (!c.ok) throw new Error("checkout failed");
        ids.push(c.lease.id);
      }
      return ids;
    };

    beforeAll(async () => {
      open = await backend.open("lease-pages");
      raw = open.client();
      store = new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey: randomBytes(32) });
    });

    afterAll(async () => {
      await open?.close();
    });

    it("a page holding exactly the last `limit` leases of a resource has no next position", async () => {
      const ids = await lease("full-one", A, 3);
      const page = await store.listPage({ resource: "full-one", limit: 3 });
      expect(page.leases.map((l) => l.id)).toEqual(ids);
      expect(page.next).toBeUndefined();
      const first = await store.listPage({ resource: "full-one", limit: 2 });
      expect(first.leases.map((l) => l.id)).toEqual(ids.slice(0, 2));
      const rest = await store.listPage({ resource: "full-one", limit: 2, after: first.next });
      expect(rest.leases.map((l) => l.id)).toEqual(ids.slice(2));
      expect(rest.next).toBeUndefined();
    });

    it("by agent, a full page followed only by other agents' leases is the last", async () => {
      const mine = await lease("full-agent", A, 2);
      await lease("full-agent", B, 3);
      const page = await store.listPage({ resource: "full-agent", agent: A, limit: 2 });
      expect(page.leases.map((l) => l.id)).toEqual(mine);
      expect(page.next).toBeUndefined();
    });

    it("over every resource, pages of any size end without an empty page after a full one", async () => {
      await lease("full-z", B, 1);
      const all = (await store.resources()).length;
      expect(all).toBe(3);
      // 3 + 5 + 1 = 9 leases in all: limit 3 and 9 end on a full page, 1 on a full page too.
      for (const limit of [1, 3, 9, 4]) {
        const seen: string[] = [];
        let after: Parameters<LeaseStore["listPage"]>[0]["after"];
        let pages = 0;
        do {
          const page = await store.listPage({ limit, after });
          expect(page.leases.length).toBeGreaterThan(0);
          seen.push(...page.leases.map((l) => l.id));
          after = page.next;
          pages++;
        } while (after && pages < 100);
        expect(new Set(seen).size).toBe(9);
        expect(pages).toBe(Math.ceil(9 / limit));
      }
    });

    it("a page reads no more leases than its budget, across resources too (a full page's look-ahead, a short page by agent)", async () => {
      // "bud-a" sorts first: two of A's leases fill a page of 2; five resources of B's follow.
      await lease("bud-a", A, 2);
      for (const r of ["bud-b", "bud-c", "bud-d", "bud-e", "bud-f"]) await lease(r, B, 1);
      const budget = 3;
      let full: Awaited<ReturnType<LeaseStore["listPage"]>> | undefined;
      const fullReads = await leaseReads(raw, async () => {
        full = await store.listPage({ agent: A, limit: 2, budget });
      });
      expect(full?.leases).toHaveLength(2);
      expect(fullReads).toBeLessThanOrEqual(budget);
      // An agent with no lease: the page stays short, and ends when the budget is spent.
      let short: Awaited<ReturnType<LeaseStore["listPage"]>> | undefined;
      const shortReads = await leaseReads(raw, async () => {
        short = await store.listPage({ agent: "spiffe://example.org/agent/none", limit: 2, budget });
      });
      expect(short?.leases).toEqual([]);
      expect(short?.next).toBeDefined();
      expect(shortReads).toBeLessThanOrEqual(budget);
    });
  });
}

for (const backend of BACKENDS) pageTests(backend);
