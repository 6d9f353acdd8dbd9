import type { AdapterContext, AdapterError, PasswordChange } from "../../../adapters/adapter.js";
import { ensure, isAdapterError, render } from "./harness.js";
import type { Check, CheckEnv, CheckPlan, Skipped, TestAccount } from "./types.js";

/** Heading of the hostile-name checks. */
export const HOSTILE_GROUP = "hostile account names are refused or handled exactly, never injected";

/** Verifies a credential; a refusal must come with a reason. */
async function valid<C>(env: CheckEnv<C>, name: string, password: string): Promise<boolean> {
  const verdict = await env.adapter.verify(env.target, { username: name, password }, env.selfCtx());
  if (!verdict.valid) {
    ensure(
      typeof verdict.reason === "string" && verdict.reason.length > 0,
      "verify returned valid:false without a reason",
    );
  }
  return verdict.valid;
}

/** Awaits a rejection, records the error's text for the leak check, returns it as an AdapterError. */
async function rejection<C>(
  env: CheckEnv<C>,
  promise: Promise<unknown>,
  what: string,
): Promise<AdapterError> {
  let caught: unknown;
  let rejected = false;
  try {
    await promise;
  } catch (err) {
    caught = err;
    rejected = true;
  }
  ensure(rejected, `expected ${what} to reject, but it resolved`);
  env.record(`thrown ${render(caught)} ${String(caught)}`);
  ensure(
    isAdapterError(caught),
    `expected ${what} to reject with an AdapterError, got ${caught instanceof Error ? caught.name : typeof caught}`,
  );
  return caught;
}

/** Rotates a tracked account: its history and current password follow the change. */
async function rotateTracked<C>(
  env: CheckEnv<C>,
  account: TestAccount,
  change: Omit<PasswordChange, "account">,
  ctx: AdapterContext,
): Promise<void> {
  account.history.push(change.next);
  await env.adapter.rotate(env.target, { account: account.name, ...change }, ctx);
  account.password = change.next;
}

function skip(reason: string): Skipped {
  return { skipped: reason };
}

const NO_ADMIN = skip("no admin credential given (rotateWith: self)");
const NO_SELF = skip("self rotation not tested for this adapter or target");

/** The hostile names: quotes, comment markers, backslashes, unicode, NUL, overlong. */
export function hostileNames(run: string, sentinelName: string): string[] {
  const p = `h${run}`;
  return [
    `${p}app"; DROP ROLE ${sentinelName};--`,
    `${p}'; DROP USER '${sentinelName}'@'%'; --`,
    `${p}\\'; DROP USER ${sentinelName}; --`,
    `${p}x'@'%`,
    `${p}o'brien\\'`,
    `${p}back\\slash\\`,
    `${p}tick\`\`; SELECT 1; --`,
    `${p}Mixed Case Space`,
    `${p}semi;colon -- dash`,
    `${p}ünïcødé-日本語`,
    `${p}emoji-😀`,
    `${p}nul\0byte`,
    `${p}*)(uid=*`,
    `${p}${"x".repeat(300)}`,
  ];
}

function hostileCheck<C>(plan: CheckPlan, name: string, index: number): Check<C> {
  return {
    name: `#${index} ${JSON.stringify(name).slice(0, 60)}`,
    group: HOSTILE_GROUP,
    async run(env) {
      const { adapter, target } = env;
      const refusal = adapter.checkAccountName(name);
      const next = env.secret();
      const ctx = plan.adminRotation ? env.adminCtx() : env.selfCtx();
      if (refusal !== null) {
        ensure(refusal.length > 0, "checkAccountName refused with an empty message");
        const err = await rejection(
          env,
          adapter.rotate(target, { account: name, next }, ctx),
          "rotate of a refused name",
        );
        ensure(!err.retryable, "rotate of a refused name must fail non-retryably");
      } else if (env.createAccount !== undefined) {
        const a = await env.createAccount(name, env.secret());
        const old = a.password;
        ensure(await valid(env, name, old), "the account's password does not verify");
        ensure(!(await valid(env, name, env.secret())), "a wrong password verifies");
        await rotateTracked(env, a, { current: old, next }, ctx);
        ensure(await valid(env, name, next), "after rotate the new password does not verify");
        ensure(!(await valid(env, name, old)), "after rotate the old password still verifies");
        if (plan.selfRotation && plan.adminRotation) {
          const last = env.secret();
          await rotateTracked(env, a, { current: next, next: last }, env.selfCtx());
          ensure(await valid(env, name, last), "after self rotate the new password does not verify");
        }
      } else {
        // Accounts cannot be created here: the name must not exist, and acting on it
        // must neither succeed nor create it.
        ensure(!(await valid(env, name, next)), "a made-up hostile name verifies");
        const err = await rejection(
          env,
          adapter.rotate(target, { account: name, current: env.secret(), next }, ctx),
          "rotate of a hostile name that does not exist",
        );
        ensure(!err.retryable, "rotate of a missing account must fail non-retryably");
        ensure(!(await valid(env, name, next)), "rotate of a missing hostile name created it");
      }
      // An injected statement would have dropped or changed the sentinel.
      ensure(
        await valid(env, env.sentinel.name, env.sentinel.password),
        "the sentinel account no longer verifies: something was injected",
      );
      return undefined;
    },
  };
}

/** The adapter describes itself in a form the registry and the docs can use. */
function selfDescriptionChecks<C>(): Check<C>[] {
  return [
    {
      name: "describes itself: literal id, description, sane constraints, a schema its targets pass",
      async run(env) {
        const { adapter } = env;
        ensure(
          /^[a-z][a-z0-9-]*$/.test(adapter.id),
          `id ${JSON.stringify(adapter.id)} must match [a-z][a-z0-9-]*`,
        );
        ensure(
          typeof adapter.description === "string" && adapter.description.length > 0,
          "description is empty",
        );
        ensure(adapter.constraints.minLength >= 1, "constraints.minLength must be at least 1");
        ensure(
          adapter.constraints.maxLength >= adapter.constraints.minLength,
          "constraints.maxLength is below minLength",
        );
        ensure(
          adapter.config.safeParse(env.target).success,
          "the target does not pass the adapter's config schema",
        );
        if (env.unreachableTarget !== undefined) {
          ensure(
            adapter.config.safeParse(env.unreachableTarget).success,
            "the unreachable target does not pass the adapter's config schema",
          );
        }
        ensure(
          adapter.checkAccountName(env.sentinel.name) === null,
          "checkAccountName refuses the sentinel account",
        );
        return undefined;
      },
    },
  ];
}

/** verify: right, wrong and unknown credentials (a refusal is valid:false, not an error). */
function verifyChecks<C>(plan: CheckPlan): Check<C>[] {
  const { run } = plan;
  return [
    {
      name: "verify accepts the right password",
      async run(env) {
        const a = await env.account();
        ensure(await valid(env, a.name, a.password), "the account's password does not verify");
        return undefined;
      },
    },
    {
      name: "verify answers a wrong password with valid:false, not an error",
      async run(env) {
        const a = await env.account();
        ensure(!(await valid(env, a.name, env.secret())), "a wrong password verifies");
        return undefined;
      },
    },
    {
      name: "verify answers an unknown account with valid:false",
      async run(env) {
        const name = `lhc${run}_nobody`;
        if (env.adapter.checkAccountName(name) !== null) return skip("the adapter refuses the made-up name");
        ensure(!(await valid(env, name, env.secret())), "an unknown account verifies");
        return undefined;
      },
    },
  ];
}

/** Rotation with the admin credential (and repeated rotation with whichever credential the run uses). */
function adminRotationChecks<C>(plan: CheckPlan): Check<C>[] {
  const { run } = plan;
  return [
    {
      name: "admin rotate: the new password works and the old one no longer does",
      async run(env) {
        if (!plan.adminRotation) return NO_ADMIN;
        const a = await env.account();
        const old = a.password;
        const next = env.secret();
        await rotateTracked(env, a, { current: old, next }, env.adminCtx());
        ensure(await valid(env, a.name, next), "after rotate the new password does not verify");
        ensure(!(await valid(env, a.name, old)), "after rotate the old password still verifies");
        return undefined;
      },
    },
    {
      name: "rotating twice works, and repeating a rotation keeps the same end state",
      async run(env) {
        const ctx = plan.adminRotation ? env.adminCtx() : env.selfCtx();
        const a = await env.account();
        const first = a.password;
        const second = env.secret();
        const third = env.secret();
        await rotateTracked(env, a, { current: first, next: second }, ctx);
        await rotateTracked(env, a, { current: second, next: third }, ctx);
        await rotateTracked(env, a, { current: second, next: third }, ctx);
        ensure(await valid(env, a.name, third), "after two rotations the last password does not verify");
        ensure(!(await valid(env, a.name, second)), "the second password still verifies");
        ensure(!(await valid(env, a.name, first)), "the first password still verifies");
        return undefined;
      },
    },
    {
      name: "admin rotate of an account that does not exist fails without creating it",
      async run(env) {
        if (!plan.adminRotation) return NO_ADMIN;
        const name = `lhc${run}_ghost`;
        const next = env.secret();
        const err = await rejection(
          env,
          env.adapter.rotate(env.target, { account: name, next }, env.adminCtx()),
          "rotate of a missing account",
        );
        ensure(!err.retryable, "rotate of a missing account must fail non-retryably");
        if (env.adapter.checkAccountName(name) === null) {
          ensure(!(await valid(env, name, next)), "rotate of a missing account created it");
        }
        return undefined;
      },
    },
    {
      name: "a wrong admin password is a non-retryable auth_failed error",
      async run(env) {
        if (!plan.adminRotation || env.admin === undefined) return NO_ADMIN;
        const a = await env.account();
        const admin = { username: env.admin.username, password: env.secret() };
        const err = await rejection(
          env,
          env.adapter.rotate(env.target, { account: a.name, next: env.secret() }, env.adminCtx(admin)),
          "rotate with a wrong admin password",
        );
        ensure(err.code === "auth_failed", `expected code auth_failed, got ${err.code}`);
        ensure(!err.retryable, "a refused admin login must not be retryable");
        ensure(await valid(env, a.name, a.password), "the account's password changed anyway");
        return undefined;
      },
    },
  ];
}

/** Self rotation: the account changes its own password, with previous as the fallback. */
function selfRotationChecks<C>(plan: CheckPlan): Check<C>[] {
  return [
    {
      name: "self rotate: the account changes its own password",
      async run(env) {
        if (!plan.selfRotation) return NO_SELF;
        const a = await env.account();
        const old = a.password;
        const next = env.secret();
        await rotateTracked(env, a, { current: old, next }, env.selfCtx());
        ensure(await valid(env, a.name, next), "after self rotate the new password does not verify");
        ensure(!(await valid(env, a.name, old)), "after self rotate the old password still verifies");
        return undefined;
      },
    },
    {
      name: "self rotate falls back to previous, and a repeat is a no-op",
      async run(env) {
        if (!plan.selfRotation) return NO_SELF;
        const a = await env.account();
        const old = a.password;
        const next = env.secret();
        // An interrupted rotation: `current` never reached the target, `previous` still works.
        const change = { current: env.secret(), previous: old, next };
        await rotateTracked(env, a, change, env.selfCtx());
        ensure(await valid(env, a.name, next), "falling back to previous did not set the new password");
        await rotateTracked(env, a, change, env.selfCtx());
        ensure(await valid(env, a.name, next), "repeating the rotation changed the password again");
        ensure(!(await valid(env, a.name, old)), "the old password still verifies");
        return undefined;
      },
    },
    {
      name: "self rotate with no working password is a non-retryable error",
      async run(env) {
        if (!plan.selfRotation) return NO_SELF;
        const a = await env.account();
        const err = await rejection(
          env,
          env.adapter.rotate(
            env.target,
            { account: a.name, current: env.secret(), next: env.secret() },
            env.selfCtx(),
          ),
          "self rotate with wrong passwords",
        );
        ensure(!err.retryable, "self rotate with no working password must fail non-retryably");
        ensure(await valid(env, a.name, a.password), "the account's password changed anyway");
        return undefined;
      },
    },
  ];
}

/** Faults and session ends: an unreachable target, terminateSessions. */
function faultChecks<C>(plan: CheckPlan): Check<C>[] {
  return [
    {
      name: "an unreachable target gives retryable AdapterErrors",
      async run(env) {
        const { unreachableTarget } = env;
        if (unreachableTarget === undefined) return skip("no unreachable connection given");
        const ctx = plan.adminRotation ? env.adminCtx() : env.selfCtx();
        const verifyErr = await rejection(
          env,
          env.adapter.verify(
            unreachableTarget,
            { username: env.sentinel.name, password: env.sentinel.password },
            ctx,
          ),
          "verify against an unreachable target",
        );
        ensure(verifyErr.retryable, "verify against an unreachable target must fail retryably");
        const rotateErr = await rejection(
          env,
          env.adapter.rotate(
            unreachableTarget,
            { account: env.sentinel.name, current: env.sentinel.password, next: env.secret() },
            ctx,
          ),
          "rotate against an unreachable target",
        );
        ensure(rotateErr.retryable, "rotate against an unreachable target must fail retryably");
        return undefined;
      },
    },
    {
      name: "terminateSessions ends the account's open sessions and no others",
      async run(env) {
        const { adapter, openSession } = env;
        if (adapter.terminateSessions === undefined) return skip("the adapter has no terminateSessions");
        if (!plan.adminRotation) return NO_ADMIN;
        const a = await env.account();
        if (openSession === undefined) {
          // Sessions cannot be opened here: only the contract of the answer is checked.
          const ended = await adapter.terminateSessions(env.target, a.name, env.adminCtx());
          ensure(Number.isSafeInteger(ended) && ended >= 0, "terminateSessions must return a count (>= 0)");
          return undefined;
        }
        const mine = await openSession(a.name, a.password);
        const other = await openSession(env.sentinel.name, env.sentinel.password);
        try {
          ensure(await mine.alive(), "the session opened for the check is not alive");
          const ended = await adapter.terminateSessions(env.target, a.name, env.adminCtx());
          ensure(ended >= 1, `terminateSessions reported ${ended} sessions ended, expected at least 1`);
          ensure(!(await mine.alive()), "the account's session is still alive");
          ensure(await other.alive(), "another account's session was ended too");
          const again = await adapter.terminateSessions(env.target, a.name, env.adminCtx());
          ensure(again === 0, `a second terminateSessions reported ${again}, expected 0`);
        } finally {
          await mine.close();
          await other.close();
        }
        return undefined;
      },
    },
  ];
}

/**
 * The adapter conformance checks (CONVENTIONS.md "Adapters") as plain async functions,
 * shared by the vitest suite and `leasehold adapters test`: verify with right and wrong
 * passwords, admin and self rotation, repeated rotation, missing accounts never created,
 * hostile account names refused or handled exactly, retryable errors for an unreachable
 * target, terminateSessions. Checks that do not apply return `{ skipped }`. The leak
 * check comes separately (`leakCheck`), to run after everything else.
 */
export function conformanceChecks<C>(plan: CheckPlan): Check<C>[] {
  return [
    ...selfDescriptionChecks<C>(),
    ...verifyChecks<C>(plan),
    ...adminRotationChecks<C>(plan),
    ...selfRotationChecks<C>(plan),
    ...hostileNames(plan.run, plan.sentinelName).map((name, i) => hostileCheck<C>(plan, name, i)),
    ...faultChecks<C>(plan),
  ];
}

/** Last: no password the checks used (or were given) appears in any log line or error message. */
export function leakCheck<C>(): Check<C> {
  return {
    name: "no password appears in any log line or error message",
    async run(env) {
      ensure(env.secrets.length > 0, "no secrets were recorded");
      const leaks = env.secrets.filter((s) => env.lines.some((line) => line.includes(s)));
      // Report how many leaked, never which: the output must not print a password.
      ensure(leaks.length === 0, `${leaks.length} password(s) found in ${env.lines.length} captured lines`);
      return undefined;
    },
  };
}
