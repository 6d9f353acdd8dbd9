import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Adapter, AdapterContext, Credential } from "../../adapters/adapter.js";
import { AdapterError } from "../../adapters/adapter.js";
import { type AdminSessionStats, adminSessions } from "../../adapters/admin-sessions.js";
import { waitFor } from "../support/wait-for.js";
import { type StaleRelay, startStaleRelay } from "./stale-relay.js";
import { testPassword } from "./conformance.js";

/** A real target with an admin of its own, for the admin-connection reuse checks. */
export interface AdminSessionEnv<C> {
  target: C;
  /** The same target reached through a local relay listening on `port`. */
  viaRelay(port: number): C;
  /** The host port the target listens on (what the relay forwards to). */
  serverPort: number;
  /** An admin used by these checks only. */
  admin: Credential;
  createAccount(name: string, password: string): Promise<void>;
  dropAccount(name: string): Promise<void>;
  /** The server's ids of the admin's open sessions, where the server lists them. */
  adminSessionIds?(): Promise<string[]>;
  /** Ends one of those sessions on the server. */
  killSession?(id: string): Promise<void>;
  /** Sets the admin's password on the server (existing sessions stay logged in). */
  setAdminPassword(password: string): Promise<void>;
  teardown(): Promise<void>;
}

export interface AdminSessionCheckOptions<C> {
  name: string;
  adapter: Adapter<C>;
  /** Whether an account can change its own password. */
  selfRotation: boolean;
  setup(): Promise<AdminSessionEnv<C>>;
}

const silent = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/**
 * Registers the checks of admin-connection reuse against a real target: a second admin
 * rotation reuses the connection of the first (seen on the server where it lists sessions,
 * and on the pool's counters), and so does ending the account's sessions after it; a session ended on the server, or a connection that died
 * without a word, never fails a rotation; a refusal is not retried; a changed admin password
 * never reuses the old session; verify and self rotation never touch the pool; two
 * rotations at once never share a connection.
 */
export function adminSessionChecks<C>(opts: AdminSessionCheckOptions<C>): void {
  const { adapter } = opts;

  describe(`admin connection reuse: ${opts.name}`, () => {
    const run = randomBytes(3).toString("hex");
    const created: string[] = [];
    let env: AdminSessionEnv<C>;
    let relay: StaleRelay;
    let counter = 0;

    const ctx = (admin: Credential = env.admin): AdapterContext => ({
      admin,
      log: silent,
      timeoutMs: 10_000,
    });
    const selfCtx = (): AdapterContext => ({ admin: undefined, log: silent, timeoutMs: 10_000 });
    const stats = (): AdminSessionStats => ({ ...adminSessions.stats(adapter.id) });
    const delta = (before: AdminSessionStats) => {
      const now = adminSessions.stats(adapter.id);
      return {
        opened: now.opened - before.opened,
        reused: now.reused - before.reused,
        retried: now.retried - before.retried,
      };
    };

    async function account(): Promise<{ name: string; password: string }> {
      const name = `lhs${run}_${counter++}`;
      const password = testPassword(adapter.constraints);
      await env.createAccount(name, password);
      created.push(name);
      return { name, password };
    }
    async function valid(target: C, name: string, password: string): Promise<boolean> {
      return (await adapter.verify(target, { username: name, password }, ctx())).valid;
    }
    /** Rotates `a` as the admin and checks that only the new password logs in. */
    async function rotate(a: { name: string; password: string }, target = env.target, admin = env.admin) {
      const next = testPassword(adapter.constraints);
      await adapter.rotate(target, { account: a.name, current: a.password, next }, ctx(admin));
      expect(await valid(env.target, a.name, next)).toBe(true);
      expect(await valid(env.target, a.name, a.password)).toBe(false);
      a.password = next;
    }
    async function idsSettleAt(count: number): Promise<string[]> {
      let ids: string[] = [];
      await waitFor(`the admin has ${count} session(s) on the server`, async () => {
        ids = (await env.adminSessionIds?.()) ?? [];
        return ids.length === count;
      });
      return ids;
    }

    beforeAll(async () => {
      env = await opts.setup();
      relay = await startStaleRelay(env.serverPort);
    });
    afterAll(async () => {
      await adapter.close?.();
      await relay?.close();
      for (const name of created) await env?.dropAccount(name).catch(() => undefined);
      await env?.teardown();
    });

    it("a second admin rotation reuses the admin connection of the first", async () => {
      await adapter.close?.();
      const a = await account();
      const before = stats();
      await rotate(a);
      const first = env.adminSessionIds ? await idsSettleAt(1) : [];
      await rotate(a);
      await rotate(a);
      expect(delta(before)).toEqual({ opened: 1, reused: 2, retried: 0 });
      if (env.adminSessionIds) expect(await env.adminSessionIds()).toEqual(first);
    });

    it.runIf(adapter.terminateSessions !== undefined)(
      "ending an account's sessions after its rotation reuses the rotation's admin connection",
      async () => {
        await adapter.close?.();
        const a = await account();
        const before = stats();
        await rotate(a);
        const first = env.adminSessionIds ? await idsSettleAt(1) : [];
        expect(await adapter.terminateSessions?.(env.target, a.name, ctx())).toBe(0);
        expect(delta(before)).toEqual({ opened: 1, reused: 1, retried: 0 });
        if (env.adminSessionIds) expect(await env.adminSessionIds()).toEqual(first);
      },
    );

    it("an admin session ended on the server is dropped: the next rotation succeeds on a new one", async () => {
      await adapter.close?.();
      const a = await account();
      if (env.adminSessionIds && env.killSession) {
        await rotate(a);
        const [pooled] = await idsSettleAt(1);
        if (pooled === undefined) throw new Error("no admin session listed");
        await env.killSession(pooled);
        await waitFor(
          "the killed session is gone",
          async () => !(await env.adminSessionIds?.())?.includes(pooled),
        );
        const before = stats();
        await rotate(a);
        expect(delta(before).opened).toBe(1);
        const [fresh] = await idsSettleAt(1);
        expect(fresh).not.toBe(pooled);
      }
      // The connection closed under it (a restart, a network cut), seen by the client.
      const t = env.viaRelay(relay.port);
      await rotate(a, t);
      relay.cutAll();
      const before = stats();
      await rotate(a, t);
      expect(delta(before).opened).toBe(1);
    });

    it("a reused connection that died silently is dropped and the rotation retried once on a new one", async () => {
      const a = await account();
      const t = env.viaRelay(relay.port);
      await rotate(a, t);
      const accepted = relay.accepted;
      relay.severOnNextSend();
      const before = stats();
      await rotate(a, t);
      expect(delta(before)).toEqual({ opened: 1, reused: 1, retried: 1 });
      // verify() went direct; the retry is the one new connection through the relay.
      expect(relay.accepted).toBe(accepted + 1);
    });

    it("a refusal on a reused connection is not retried", async () => {
      const a = await account();
      await rotate(a);
      const before = stats();
      const err = await adapter
        .rotate(env.target, { account: `lhs${run}_missing`, next: testPassword(adapter.constraints) }, ctx())
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AdapterError);
      expect((err as AdapterError).retryable).toBe(false);
      expect(delta(before)).toEqual({ opened: 0, reused: 1, retried: 0 });
    });

    it("a changed admin password never reuses a session opened with the old one", async () => {
      await adapter.close?.();
      const a = await account();
      const original = env.admin;
      await rotate(a);
      const changed = { username: original.username, password: testPassword() };
      await env.setAdminPassword(changed.password);
      try {
        const before = stats();
        await rotate(a, env.target, changed);
        expect(delta(before)).toEqual({ opened: 1, reused: 0, retried: 0 });
        if (env.adminSessionIds) await idsSettleAt(1);
        // The old password no longer logs in, and no session opened with it is left to use.
        const err = await adapter
          .rotate(env.target, { account: a.name, next: testPassword(adapter.constraints) }, ctx(original))
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(AdapterError);
        expect((err as AdapterError).code).toBe("auth_failed");
        expect(delta(before).reused).toBe(0);
      } finally {
        await env.setAdminPassword(original.password);
      }
      const before = stats();
      await rotate(a);
      expect(delta(before)).toEqual({ opened: 1, reused: 0, retried: 0 });
    });

    it("verify and self rotation never use or open a pooled admin connection", async () => {
      const a = await account();
      await rotate(a);
      const idle = adminSessions.idleCount;
      const before = stats();
      expect(await valid(env.target, a.name, a.password)).toBe(true);
      expect(await valid(env.target, a.name, "wrong-password-0123456789")).toBe(false);
      if (opts.selfRotation) {
        const next = testPassword(adapter.constraints);
        await adapter.rotate(env.target, { account: a.name, current: a.password, next }, selfCtx());
        expect(await valid(env.target, a.name, next)).toBe(true);
      }
      expect(delta(before)).toEqual({ opened: 0, reused: 0, retried: 0 });
      expect(adminSessions.idleCount).toBe(idle);
    });

    /** Rotates `a` in a child process (rotate-once.ts); its exit code, or why it did not exit. */
    async function rotateInChild(a: { name: string; password: string }, close: boolean) {
      const next = testPassword(adapter.constraints);
      const script = fileURLToPath(new URL("./rotate-once.ts", import.meta.url));
      const args = ["--import", "tsx", script, ...(close ? ["--close"] : [])];
      const child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (chunk) => {
        out += String(chunk);
      });
      child.stderr.on("data", (chunk) => {
        out += String(chunk);
      });
      const exited = new Promise<number | string>((resolve) => {
        // Below the 30 s idle time, so only an unref'd socket and timer let it exit before; as
        // far from it as a busy machine's start of node and tsx allows.
        const timer = setTimeout(() => {
          child.kill("SIGKILL");
          resolve("still running after 25 s");
        }, 25_000);
        child.on("exit", (code) => {
          clearTimeout(timer);
          resolve(code ?? "killed");
        });
      });
      child.stdin.end(
        JSON.stringify({
          adapter: adapter.id,
          target: env.target,
          account: a.name,
          current: a.password,
          next,
          admin: env.admin,
        }),
      );
      const code = await exited;
      a.password = next;
      return { code, out };
    }

    it("a process that rotated exits on its own: the idle admin connection does not hold it", async () => {
      const a = await account();
      expect(await rotateInChild(a, false)).toEqual({ code: 0, out: "rotated\n" });
      expect(await valid(env.target, a.name, a.password)).toBe(true);
    });

    it("closeAdminSessions completes before the process exits", async () => {
      const a = await account();
      expect(await rotateInChild(a, true)).toEqual({ code: 0, out: "rotated\nclosed\n" });
      expect(await valid(env.target, a.name, a.password)).toBe(true);
    });

    it("two rotations at once never share a connection, and one stays idle afterwards", async () => {
      await adapter.close?.();
      const a = await account();
      const b = await account();
      await rotate(a);
      const before = stats();
      await Promise.all([rotate(a), rotate(b)]);
      expect(delta(before)).toEqual({ opened: 1, reused: 1, retried: 0 });
      if (env.adminSessionIds) await idsSettleAt(1);
      const after = stats();
      await rotate(b);
      expect(delta(after)).toEqual({ opened: 0, reused: 1, retried: 0 });
    });
  });
}
