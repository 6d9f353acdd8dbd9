import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, it } from "vitest";
import { LeaseStore } from "../../sidecar/leases/index.js";
import { checkInvariants, COMMANDS, type Model, type Real, runAgents, runWaiters } from "./lease-model.js";
import { BACKENDS, type OpenBackend } from "./redis-backends.js";

for (const backend of BACKENDS) {
  describe(`lease model on ${backend.name}`, () => {
    let open: OpenBackend;
    let stores: [LeaseStore, LeaseStore];
    let run = 0;

    beforeAll(async () => {
      open = await backend.open("lease-model");
      // Two sidecars: separate connections, one prefix.
      const macKey = randomBytes(32);
      stores = [
        new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey }),
        new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey }),
      ];
    });

    afterAll(async () => {
      await open?.close();
    });

    it("random checkouts, renewals, ends, expiries and reaper runs from two sidecars keep I1, I4 and I5", async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 3 }),
          fc.commands(COMMANDS, { maxCommands: 40, size: "max" }),
          async (size, cmds) => {
            // A fresh resource per run: its pool, schedule and leases start empty.
            const resource = `model-${++run}`;
            const pool = Array.from({ length: size }, (_, i) => `acct-${i}`);
            await stores[0].syncPool(resource, pool, "available");
            const setup = async () => {
              const model: Model = {
                accounts: new Map(pool.map((a) => [a, "available"])),
                leases: [],
                hidden: new Map(),
                ends: new Map(),
                queue: [],
                orderUncertain: false,
              };
              const real: Real = {
                stores,
                resource,
                pool,
                agents: runAgents(resource),
                waiters: runWaiters(resource),
              };
              await checkInvariants(model, real, 0);
              return { model, real };
            };
            await fc.asyncModelRun(setup, cmds);
          },
        ),
        { numRuns: 30 },
      );
    });
  });
}
