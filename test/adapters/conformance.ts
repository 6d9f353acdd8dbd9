import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type {
  Adapter,
  AdapterContext,
  AdapterLogger,
  Credential,
  PasswordConstraints,
} from "../../adapters/adapter.js";
import { AdapterError } from "../../adapters/adapter.js";

/** A live login of an account on the target, to check that terminateSessions ends it. */
export interface ConformanceSession {
  /** True while the session still answers a trivial request. */
  alive(): Promise<boolean>;
  close(): Promise<void>;
}

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

/** A random test password of base64url characters that fits the adapter's constraints. */
export function testPassword(constraints?: PasswordConstraints): string {
  const min = constraints?.minLength ?? 24;
  const max = constraints?.maxLength ?? 64;
  const length = Math.min(Math.max(24, min), max);
  const forbidden = new Set(constraints?.forbidden ?? "");
  let out = "";
  while (out.length < length) {
    out += [...randomBytes(length).toString("base64url")].filter((ch) => !forbidden.has(ch)).join("");
  }
  return out.slice(0, length);
}

/** Errors may come from an adapter module with its own copy of adapter.ts: match by shape too. */
function isAdapterError(err: unknown): err is AdapterError {
  return (
    err instanceof AdapterError ||
    (err instanceof Error &&
      err.name === "AdapterError" &&
      "retryable" in err &&
      typeof err.retryable === "boolean" &&
      "code" in err &&
      typeof err.code === "string")
  );
}

/** Serialises a log object like a JSON logger would, including errors' messages, stacks and causes. */
function render(value: unknown): string {
  const seen = new WeakSet<object>();
  try {
    return JSON.stringify(value, (_key, v: unknown) => {
      if (v instanceof Error) {
        return { ...v, name: v.name, message: v.message, stack: v.stack, cause: v.cause };
      }
      if (typeof v === "object" && v !== null) {
        if (seen.has(v)) return "[circular]";
        seen.add(v);
      }
      return typeof v === "bigint" ? v.toString() : v;
    });
  } catch {
    return String(value);
  }
}

/**
 * Registers the adapter conformance suite (CONVENTIONS.md "Adapters") as vitest blocks:
 * verify with right and wrong passwords, admin and self rotation, repeated rotation,
 * hostile account names (refused by checkAccountName, or handled exactly and never
 * injected), retryable errors for an unreachable target, terminateSessions, and no
 * password in any log line or error message.
 */
export function adapterConformance<C>(opts: ConformanceOptions<C>): void {
  const { adapter } = opts;
  const selfRotation = opts.selfRotation ?? true;

  describe(`adapter conformance: ${opts.name}`, () => {
    const run = randomBytes(3).toString("hex");
    const lines: string[] = [];
    const secrets: string[] = [];
    const created = new Set<string>();
    const sentinel = { name: `lhc${run}_sentinel`, password: "" };
    let env: ConformanceEnv<C> | undefined;

    const log: AdapterLogger = {
      debug: (obj, msg) => lines.push(`debug ${render(obj)} ${msg ?? ""}`),
      info: (obj, msg) => lines.push(`info ${render(obj)} ${msg ?? ""}`),
      warn: (obj, msg) => lines.push(`warn ${render(obj)} ${msg ?? ""}`),
      error: (obj, msg) => lines.push(`error ${render(obj)} ${msg ?? ""}`),
    };

    function ready(): ConformanceEnv<C> {
      if (env === undefined) throw new Error("conformance setup did not complete");
      return env;
    }
    function adminCtx(admin?: Credential): AdapterContext {
      return { admin: admin ?? ready().admin, log, timeoutMs: TIMEOUT_MS };
    }
    function selfCtx(): AdapterContext {
      return { admin: undefined, log, timeoutMs: TIMEOUT_MS };
    }
    function secret(): string {
      const pw = testPassword(adapter.constraints);
      secrets.push(pw);
      return pw;
    }
    let counter = 0;
    function accountName(): string {
      counter += 1;
      return `lhc${run}_${counter}`;
    }
    async function account(name = accountName()): Promise<{ name: string; password: string }> {
      const password = secret();
      await ready().createAccount(name, password);
      created.add(name);
      return { name, password };
    }
    async function valid(name: string, password: string): Promise<boolean> {
      const verdict = await adapter.verify(ready().target, { username: name, password }, selfCtx());
      if (!verdict.valid) {
        expect(typeof verdict.reason).toBe("string");
        expect(verdict.reason.length).toBeGreaterThan(0);
      }
      return verdict.valid;
    }
    /** Awaits a rejection, records the error's text for the leak check, returns it as an AdapterError. */
    async function rejection(promise: Promise<unknown>): Promise<AdapterError> {
      let caught: unknown;
      try {
        await promise;
      } catch (err) {
        caught = err;
      }
      expect(caught, "expected the call to reject").toBeDefined();
      lines.push(`thrown ${render(caught)} ${String(caught)}`);
      expect(isAdapterError(caught), `expected an AdapterError, got ${String(caught)}`).toBe(true);
      return caught as AdapterError;
    }

    beforeAll(async () => {
      env = await opts.setup();
      if (env.admin.password.length >= 8) secrets.push(env.admin.password);
      sentinel.password = secret();
      await env.createAccount(sentinel.name, sentinel.password);
      created.add(sentinel.name);
    });

    afterAll(async () => {
      if (env === undefined) return;
      for (const name of created) await env.dropAccount(name).catch(() => undefined);
      await env.teardown();
    });

    it("describes itself: literal id, description, sane constraints, a schema its targets pass", () => {
      expect(adapter.id).toMatch(/^[a-z][a-z0-9-]*$/);
      expect(adapter.description.length).toBeGreaterThan(0);
      expect(adapter.constraints.minLength).toBeGreaterThanOrEqual(1);
      expect(adapter.constraints.maxLength).toBeGreaterThanOrEqual(adapter.constraints.minLength);
      expect(adapter.config.safeParse(ready().target).success).toBe(true);
      expect(adapter.config.safeParse(ready().unreachableTarget).success).toBe(true);
      expect(adapter.checkAccountName(sentinel.name)).toBeNull();
    });

    it("verify accepts the right password", async () => {
      const a = await account();
      expect(await valid(a.name, a.password)).toBe(true);
    });

    it("verify answers a wrong password with valid:false, not an error", async () => {
      const a = await account();
      expect(await valid(a.name, secret())).toBe(false);
    });

    it("verify answers an unknown account with valid:false", async () => {
      expect(await valid(`lhc${run}_nobody`, secret())).toBe(false);
    });

    it("admin rotate: the new password works and the old one no longer does", async () => {
      const a = await account();
      const next = secret();
      await adapter.rotate(ready().target, { account: a.name, current: a.password, next }, adminCtx());
      expect(await valid(a.name, next)).toBe(true);
      expect(await valid(a.name, a.password)).toBe(false);
    });

    it("rotating twice works, and repeating a rotation keeps the same end state", async () => {
      const a = await account();
      const second = secret();
      const third = secret();
      await adapter.rotate(
        ready().target,
        { account: a.name, current: a.password, next: second },
        adminCtx(),
      );
      await adapter.rotate(ready().target, { account: a.name, current: second, next: third }, adminCtx());
      await adapter.rotate(ready().target, { account: a.name, current: second, next: third }, adminCtx());
      expect(await valid(a.name, third)).toBe(true);
      expect(await valid(a.name, second)).toBe(false);
      expect(await valid(a.name, a.password)).toBe(false);
    });

    it("admin rotate of an account that does not exist fails without creating it", async () => {
      const name = `lhc${run}_ghost`;
      const next = secret();
      const err = await rejection(adapter.rotate(ready().target, { account: name, next }, adminCtx()));
      expect(err.retryable).toBe(false);
      expect(await valid(name, next)).toBe(false);
    });

    it("a wrong admin password is a non-retryable auth_failed error", async () => {
      const a = await account();
      const admin = { username: ready().admin.username, password: secret() };
      const err = await rejection(
        adapter.rotate(ready().target, { account: a.name, next: secret() }, adminCtx(admin)),
      );
      expect(err.code).toBe("auth_failed");
      expect(err.retryable).toBe(false);
      expect(await valid(a.name, a.password)).toBe(true);
    });

    it.runIf(selfRotation)("self rotate: the account changes its own password", async () => {
      const a = await account();
      const next = secret();
      await adapter.rotate(ready().target, { account: a.name, current: a.password, next }, selfCtx());
      expect(await valid(a.name, next)).toBe(true);
      expect(await valid(a.name, a.password)).toBe(false);
    });

    it.runIf(selfRotation)("self rotate falls back to previous, and a repeat is a no-op", async () => {
      const a = await account();
      const next = secret();
      // An interrupted rotation: `current` never reached the target, `previous` still works.
      const change = { account: a.name, current: secret(), previous: a.password, next };
      await adapter.rotate(ready().target, change, selfCtx());
      expect(await valid(a.name, next)).toBe(true);
      await adapter.rotate(ready().target, change, selfCtx());
      expect(await valid(a.name, next)).toBe(true);
      expect(await valid(a.name, a.password)).toBe(false);
    });

    it.runIf(selfRotation)("self rotate with no working password is a non-retryable error", async () => {
      const a = await account();
      const err = await rejection(
        adapter.rotate(ready().target, { account: a.name, current: secret(), next: secret() }, selfCtx()),
      );
      expect(err.retryable).toBe(false);
      expect(await valid(a.name, a.password)).toBe(true);
    });

    describe("hostile account names are refused or handled exactly, never injected", () => {
      const p = `h${run}`;
      const hostile = [
        `${p}app"; DROP ROLE ${sentinel.name};--`,
        `${p}'; DROP USER '${sentinel.name}'@'%'; --`,
        `${p}\\'; DROP USER ${sentinel.name}; --`,
        `${p}x'@'%`,
        `${p}o'brien\\'`,
        `${p}back\\slash\\`,
        `${p}tick\`\`; SELECT 1; --`,
        `${p}Mixed Case Space`,
        `${p}semi;colon -- dash`,
        `${p}ünïcødé-日本語`,
        `${p}emoji-😀`,
        `${p}nul\0byte`,
        `${p}${"x".repeat(300)}`,
      ];
      for (const [i, name] of hostile.entries()) {
        it(`#${i} ${JSON.stringify(name).slice(0, 60)}`, async () => {
          const refusal = adapter.checkAccountName(name);
          const next = secret();
          if (refusal !== null) {
            expect(refusal.length).toBeGreaterThan(0);
            const err = await rejection(adapter.rotate(ready().target, { account: name, next }, adminCtx()));
            expect(err.retryable).toBe(false);
          } else {
            const a = await account(name);
            expect(await valid(name, a.password)).toBe(true);
            expect(await valid(name, secret())).toBe(false);
            await adapter.rotate(ready().target, { account: name, current: a.password, next }, adminCtx());
            expect(await valid(name, next)).toBe(true);
            expect(await valid(name, a.password)).toBe(false);
            if (selfRotation) {
              const last = secret();
              await adapter.rotate(ready().target, { account: name, current: next, next: last }, selfCtx());
              expect(await valid(name, last)).toBe(true);
            }
          }
          // An injected statement would have dropped or changed the sentinel.
          expect(await valid(sentinel.name, sentinel.password)).toBe(true);
        });
      }
    });

    it("an unreachable target gives retryable AdapterErrors", async () => {
      const { unreachableTarget, admin } = ready();
      const ctx = { admin, log, timeoutMs: TIMEOUT_MS };
      const verifyErr = await rejection(
        adapter.verify(unreachableTarget, { username: sentinel.name, password: sentinel.password }, ctx),
      );
      expect(verifyErr.retryable).toBe(true);
      const rotateErr = await rejection(
        adapter.rotate(unreachableTarget, { account: sentinel.name, next: secret() }, ctx),
      );
      expect(rotateErr.retryable).toBe(true);
    });

    it("terminateSessions ends the account's open sessions and no others", async (t) => {
      const { openSession } = ready();
      if (adapter.terminateSessions === undefined || openSession === undefined) {
        t.skip();
        return;
      }
      const a = await account();
      const mine = await openSession(a.name, a.password);
      const other = await openSession(sentinel.name, sentinel.password);
      try {
        expect(await mine.alive()).toBe(true);
        const ended = await adapter.terminateSessions(ready().target, a.name, adminCtx());
        expect(ended).toBeGreaterThanOrEqual(1);
        expect(await mine.alive()).toBe(false);
        expect(await other.alive()).toBe(true);
        expect(await adapter.terminateSessions(ready().target, a.name, adminCtx())).toBe(0);
      } finally {
        await mine.close();
        await other.close();
      }
    });

    it("no password appears in any log line or error message", () => {
      expect(secrets.length).toBeGreaterThan(0);
      const leaks = secrets.filter((s) => lines.some((line) => line.includes(s)));
      // Report how many leaked, never which: the test output must not print a password.
      expect(leaks.length, `${leaks.length} password(s) found in ${lines.length} captured lines`).toBe(0);
    });
  });
}
