import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "vitest";
import type { Adapter, Credential } from "../../adapters/adapter.js";
import {
  type Check,
  type CheckEnv,
  type ConformanceSession,
  conformanceChecks,
  leakCheck,
  Recorder,
  type TestAccount,
  testPassword,
} from "../../sidecar/cli/adapters-test/index.js";
import { accountChecks } from "./account-checks.js";

export type { ConformanceSession };
export { testPassword };

/** A real target prepared for the suite, with helpers that work independently of the adapter. */
export interface ConformanceEnv<C> {
  target: C;
  /** A credential allowed to change other accounts' passwords (rotateWith: admin). */
  admin: Credential;
  /** Creates a login account with this exact name and password (quoting it by the target's own rules). */
  createAccount(name: string, password: string): Promise<void>;
  /** Drops the account; no error if it is gone. */
  dropAccount(name: string): Promise<void>;
  /** Valid settings naming a target that is not listening. */
  unreachableTarget: C;
  /** How errors must name unreachableTarget's address (`127.0.0.1:PORT`); absent: no address. */
  unreachableAddress?: string;
  /** The target's settings with another spelling of its host, or another port (accountIdentity). */
  targetVia?(host: string, port?: number): C;
  openSession?(name: string, password: string): Promise<ConformanceSession>;
  teardown(): Promise<void>;
}

export interface ConformanceOptions<C> {
  name: string;
  adapter: Adapter<C>;
  setup(): Promise<ConformanceEnv<C>>;
  /** Whether an account can change its own password (rotateWith: self). @default true */
  selfRotation?: boolean;
}

const TIMEOUT_MS = 15_000;

/**
 * Registers the adapter conformance suite (CONVENTIONS.md "Adapters") as vitest blocks,
 * one per shared check of `sidecar/cli/adapters-test` (the same checks `leasehold adapters
 * test` runs): verify with right and wrong passwords, admin and self rotation, repeated
 * rotation, hostile account names (refused by checkAccountName, or created and handled
 * exactly, never injected), retryable errors for an unreachable target, terminateSessions,
 * and no password in any log line or error message. Every check gets fresh accounts.
 */
export function adapterConformance<C>(opts: ConformanceOptions<C>): void {
  const { adapter } = opts;

  describe(`adapter conformance: ${opts.name}`, () => {
    const run = randomBytes(3).toString("hex");
    const sentinelName = `lhc${run}_sentinel`;
    const plan = { run, sentinelName, adminRotation: true, selfRotation: opts.selfRotation ?? true };
    const checks = conformanceChecks<C>(plan);
    const created = new Set<string>();
    let setup: ConformanceEnv<C> | undefined;
    let env: CheckEnv<C> | undefined;

    beforeAll(async () => {
      const ready = await opts.setup();
      setup = ready;
      const recorder = new Recorder(adapter.constraints, TIMEOUT_MS, ready.admin);
      async function create(name: string, password: string): Promise<TestAccount> {
        await ready.createAccount(name, password);
        created.add(name);
        return { name, password, history: [password] };
      }
      let counter = 0;
      const sentinel = await create(sentinelName, recorder.secret());
      env = {
        adapter,
        target: ready.target,
        admin: ready.admin,
        unreachableTarget: ready.unreachableTarget,
        sentinel,
        account: () => {
          counter += 1;
          return create(`lhc${run}_${counter}`, recorder.secret());
        },
        createAccount: create,
        openSession: ready.openSession?.bind(ready),
        adminCtx: (admin) => recorder.adminCtx(admin),
        selfCtx: () => recorder.selfCtx(),
        secret: () => recorder.secret(),
        record: (line) => recorder.record(line),
        log: recorder.log,
        lines: recorder.lines,
        secrets: recorder.secrets,
      };
    });

    afterAll(async () => {
      if (setup === undefined) return;
      for (const name of created) await setup.dropAccount(name).catch(() => undefined);
      await setup.teardown();
    });

    function register(check: Check<C>): void {
      it(check.name, async (t) => {
        if (env === undefined) throw new Error("conformance setup did not complete");
        const outcome = await check.run(env);
        if (outcome !== undefined) t.skip(outcome.skipped);
      });
    }

    // Checks in order; the members of a group together under one heading, where the first one was.
    const entries: Array<Check<C> | { group: string; members: Check<C>[] }> = [];
    for (const check of checks) {
      if (check.group === undefined) {
        entries.push(check);
        continue;
      }
      const existing = entries.find((e) => "members" in e && e.group === check.group);
      if (existing !== undefined && "members" in existing) existing.members.push(check);
      else entries.push({ group: check.group, members: [check] });
    }
    for (const entry of entries) {
      if ("members" in entry) describe(entry.group, () => entry.members.forEach(register));
      else register(entry);
    }
    register(leakCheck<C>());

    if (adapter.checkAccount !== undefined || adapter.accountIdentity !== undefined) {
      accountChecks(adapter, () => {
        if (setup === undefined) throw new Error("conformance setup did not complete");
        return setup;
      });
    }
  });
}
