import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type Adapter, type AdapterContext, AdapterError, type Credential } from "../../adapters/adapter.js";
import { testPassword } from "../../sidecar/cli/adapters-test/index.js";
import type { ConformanceEnv } from "./conformance.js";

/** What the registration checks need of a real target (a part of the conformance setup). */
export type AccountCheckEnv<C> = Pick<
  ConformanceEnv<C>,
  | "target"
  | "admin"
  | "createAccount"
  | "dropAccount"
  | "unreachableTarget"
  | "unreachableAddress"
  | "targetVia"
>;

/** Fails when `text` holds `secret` (an empty secret, such as a test root's, holds nothing to leak). */
function expectNoSecret(text: string, secret: string): void {
  if (secret !== "") expect(text).not.toContain(secret);
}

function recordingCtx(admin: Credential | undefined, lines: string[]): AdapterContext {
  const push = (o: object, m?: string) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`);
  return { admin, log: { debug: push, info: push, warn: push, error: push }, timeoutMs: 10_000 };
}

/**
 * The shared checks of an adapter's `checkAccount` and `accountIdentity` (issue 17: registrations
 * that tell the truth, one owner per account) against its real target: an existing account
 * passes, a missing one fails naming it, the one-owner identity is the same for `localhost` and
 * `127.0.0.1` and differs for another port or account, and a refused port gives a retryable
 * error naming the address and ECONNREFUSED, with no password in any of it.
 */
export function accountChecks<C>(adapter: Adapter<C>, getEnv: () => AccountCheckEnv<C>): void {
  describe("registration checks (checkAccount, accountIdentity)", () => {
    const run = randomBytes(3).toString("hex");
    const lines: string[] = [];

    it("checkAccount: an existing account passes with the admin credential", async () => {
      const env = getEnv();
      if (adapter.checkAccount === undefined) throw new Error(`${adapter.id} has no checkAccount`);
      const name = `lhk${run}_1`;
      const password = testPassword();
      await env.createAccount(name, password);
      try {
        const verdict = await adapter.checkAccount(env.target, name, recordingCtx(env.admin, lines));
        expect(verdict).toEqual({ valid: true });
      } finally {
        await env.dropAccount(name);
      }
      expectNoSecret(lines.join("\n"), password);
      expectNoSecret(lines.join("\n"), env.admin.password);
    });

    it("checkAccount: a missing account fails, and the reason names it", async () => {
      const env = getEnv();
      const name = `lhk${run}_missing`;
      const verdict = await adapter.checkAccount?.(env.target, name, recordingCtx(env.admin, lines));
      expect(verdict?.valid).toBe(false);
      const reason = verdict?.valid === false ? verdict.reason : "";
      expect(reason).toContain(name);
      expectNoSecret(reason, env.admin.password);
    });

    it("accountIdentity: one name per account on one server; another port or account is another", () => {
      const env = getEnv();
      const identity = adapter.accountIdentity?.bind(adapter);
      if (identity === undefined) throw new Error(`${adapter.id} has no accountIdentity`);
      const a = identity(env.target, "app_orders_1");
      expectNoSecret(a, env.admin.password);
      expect(identity(env.target, "app_orders_1")).toBe(a);
      expect(identity(env.target, "app_orders_2")).not.toBe(a);
      if (env.targetVia === undefined) return;
      const viaLocalhost = identity(env.targetVia("localhost"), "app_orders_1");
      expect(identity(env.targetVia("127.0.0.1"), "app_orders_1")).toBe(viaLocalhost);
      expect(identity(env.targetVia("LocalHost"), "app_orders_1")).toBe(viaLocalhost);
      expect(identity(env.targetVia("::1"), "app_orders_1")).toBe(viaLocalhost);
      expect(identity(env.targetVia("127.0.0.1", 1), "app_orders_1")).not.toBe(viaLocalhost);
      expect(identity(env.targetVia("db.example.org"), "app_orders_1")).not.toBe(viaLocalhost);
    });

    it("a refused port: retryable, naming the address and ECONNREFUSED, never the password", async () => {
      const env = getEnv();
      const password = testPassword();
      for (const call of [
        () => adapter.checkAccount?.(env.unreachableTarget, "app_orders_1", recordingCtx(env.admin, lines)),
        () =>
          adapter.verify(
            env.unreachableTarget,
            { username: "app_orders_1", password },
            recordingCtx(env.admin, lines),
          ),
      ]) {
        const err = await Promise.resolve()
          .then(call)
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(AdapterError);
        const e = err as AdapterError;
        expect(e.retryable).toBe(true);
        expectNoSecret(e.message, env.admin.password);
        expectNoSecret(e.message, password);
        if (env.unreachableAddress === undefined) continue;
        expect(e.message).toContain(`${adapter.id} ${env.unreachableAddress}`);
        expect(e.message).toMatch(/connection refused \(ECONNREFUSED\)/);
      }
    });
  });
}
