import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseStore } from "../../sidecar/leases/index.js";
import { limitAgentRateAndCount } from "../../sidecar/service/agent-rate.js";
import { singleRedis, type OpenBackend } from "../leases/redis-backends.js";

/** A checkout's first round trip: the identity token's one-time jti, the agent's rate, its lease count. */

let open: OpenBackend;
let store: LeaseStore;
const agent = () => `spiffe://example.org/agent/rate-${randomBytes(3).toString("hex")}`;
const spendOf = () => ({ key: `${open.prefix}idjti:${randomBytes(6).toString("hex")}`, ttlMs: 5_000 });

beforeAll(async () => {
  open = await singleRedis.open("agent-rate");
  store = new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey: randomBytes(32) });
});
afterAll(async () => {
  await open?.close();
});

describe("limitAgentRateAndCount with the identity token's one-time jti", () => {
  it("spends the jti; its replay gets 401 and is not counted against the rate", async () => {
    const a = agent();
    const spend = spendOf();
    expect(await limitAgentRateAndCount(store, "checkout", a, 2, spend)).toBe(0);
    await expect(limitAgentRateAndCount(store, "checkout", a, 2, spend)).rejects.toMatchObject({
      code: "unauthenticated",
      message: "identity token was already used (replay)",
    });
    // The replay did not use up the rate: a second fresh token is within 2 a minute, a third is not.
    expect(await limitAgentRateAndCount(store, "checkout", a, 2, spendOf())).toBe(0);
    await expect(limitAgentRateAndCount(store, "checkout", a, 2, spendOf())).rejects.toMatchObject({
      code: "rate_limited",
    });
  });

  it("without a rate limit the jti is still spent, and its replay refused", async () => {
    const a = agent();
    const spend = spendOf();
    expect(await limitAgentRateAndCount(store, "checkout", a, 0, spend)).toBe(0);
    await expect(limitAgentRateAndCount(store, "checkout", a, undefined, spend)).rejects.toMatchObject({
      code: "unauthenticated",
    });
    // No jti to spend (one-time tokens off) and no limit: only the lease count is read.
    expect(await limitAgentRateAndCount(store, "checkout", a, 0)).toBe(0);
  });
});
