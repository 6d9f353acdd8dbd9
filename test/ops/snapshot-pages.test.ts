import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeLease, type OpsHarness, startOpsHarness } from "./ops-harness.js";
import { openStream } from "./sse-client.js";

/*
 * The dashboard's and `leases watch`' snapshot holds every active lease, read page by page from
 * the lease store (pages of at most 1,000), not only the first page of `GET /v1/leases`.
 */

let h: OpsHarness;
const auth = () => ({ authorization: `Bearer ${h.adminToken}` });
const LEASES = 1_203;

beforeAll(async () => {
  h = await startOpsHarness("snap-pages");
}, 60_000);

afterAll(async () => {
  await h?.close();
});

describe("the event stream's snapshot over several pages", () => {
  it("carries all 1,203 active leases (two resources, more than one page), soonest expiry first", async () => {
    const made = new Set<string>();
    for (let i = 0; i < LEASES; i++) {
      const resource = i % 2 === 0 ? "pages-a-db" : "pages-b-db";
      const l = await makeLease(h, resource, `acct_${i}`, "spiffe://example.org/agent/a", 60_000 + i * 10);
      made.add(l.id);
    }
    const first = await fetch(`${h.url}/v1/leases?limit=1000`, { headers: auth() });
    const page = (await first.json()) as { leases: unknown[]; next_cursor?: string };
    expect(page.leases).toHaveLength(1000);
    expect(page.next_cursor).toBeTypeOf("string");
    // 1,203 = 3 × 401: the third page is full and the last, so it has no next_cursor.
    const sizes: number[] = [];
    let cursor: string | undefined;
    do {
      const res = await fetch(`${h.url}/v1/leases?limit=401${cursor ? `&cursor=${cursor}` : ""}`, {
        headers: auth(),
      });
      const p = (await res.json()) as { leases: unknown[]; next_cursor?: string };
      sizes.push(p.leases.length);
      cursor = p.next_cursor;
    } while (cursor !== undefined && sizes.length < 10);
    expect(sizes).toEqual([401, 401, 401]);

    const s = await openStream(h.url, auth());
    try {
      const snap = await s.next((m) => m.event === "snapshot");
      const data = JSON.parse(snap.data) as {
        leases: Array<{ id: string; ttl_seconds: number }>;
        leases_truncated: boolean;
      };
      expect(data.leases_truncated).toBe(false);
      const ids = data.leases.map((l) => l.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.filter((id) => made.has(id))).toHaveLength(LEASES);
      const ttls = data.leases.map((l) => l.ttl_seconds);
      expect(ttls).toEqual([...ttls].sort((a, b) => a - b));
    } finally {
      s.close();
    }
  }, 120_000);
});
