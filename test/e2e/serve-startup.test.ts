import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { freePort } from "../support/free-port.js";
import { dropPrefix } from "../support/redis.js";
import { startRedisServer, type TestRedisServer } from "../support/redis-server.js";
import { cliPath } from "../support/sidecar-process.js";
import { DEMO_POLICY } from "../support/stack.js";
import { useVault, type VaultHandle } from "../support/vault.js";
import { abortWhenExited, waitFor } from "../support/wait-for.js";

/**
 * `leasehold serve` fails loudly (issue 17, items 4 and 5): it exits non-zero with one line
 * naming what is wrong, having closed what it opened, when it cannot listen, when its policy is
 * invalid, or (with --wait-for-deps=0) when Redis or Vault is unreachable; errors of Redis and
 * Vault name the address and the cause, never the credentials; and it waits for a dependency
 * that comes up late.
 */

interface Serve {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** stdout and stderr so far. */
  output(): string;
  stderr(): string;
  stop(): Promise<void>;
}

let vault: VaultHandle;
let dir: string;
const prefixes: string[] = [];
const running: Serve[] = [];

function serve(configFile: string, ...args: string[]): Serve {
  const child = spawn(process.execPath, [cliPath(), "serve", "--config", configFile, ...args], {
    env: { ...process.env, LH_TEST_VAULT_TOKEN: vault.token },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
    out += d.toString();
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const s: Serve = {
    child,
    exited,
    output: () => out,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
  running.push(s);
  return s;
}

/** Writes a config (and the demo policy) into a fresh folder; returns the config file. */
async function config(o: {
  port: number;
  socket?: string;
  redisUrl?: string;
  vaultAddress?: string;
  policy?: string;
}): Promise<string> {
  const d = await mkdtemp(join(dir, "case-"));
  const prefix = `lhtest:startup:${randomBytes(4).toString("hex")}:`;
  prefixes.push(prefix);
  const cfg = {
    listen: o.socket ? { socket: o.socket } : { host: "127.0.0.1", port: o.port },
    redis: { url: o.redisUrl ?? "redis://127.0.0.1:6379/0", prefix },
    vault: {
      address: o.vaultAddress ?? vault.address,
      auth: { method: "token", token: "${LH_TEST_VAULT_TOKEN}" },
      mount: vault.mount,
      prefix: `leasehold-test-${randomBytes(4).toString("hex")}`,
    },
    identity: { audience: "leasehold", trust: [] },
    tokens: { signingKey: "./state/signing.jwk" },
    policy: { file: "./policy.cedar" },
    audit: { file: "./state/audit.jsonl" },
    admin: { tokenFile: "./state/admin.token" },
    log: { level: "info" },
  };
  const file = join(d, "leasehold.yaml");
  await writeFile(file, stringify(cfg));
  await writeFile(join(d, "policy.cedar"), o.policy ?? DEMO_POLICY);
  return file;
}

/** A port nothing listens on: taken from the kernel, then released. */
const closedPort = freePort;

/** Waits for the exit event (bounded by `timeoutMs`), then checks no process with its pid is left. */
async function exitOf(s: Serve, timeoutMs = 60_000): Promise<number | null> {
  const code = await waitFor(
    () => `serve to exit; output so far:\n${s.output().slice(-2000)}`,
    () =>
      s.child.exitCode !== null ? { code: s.child.exitCode } : s.child.signalCode ? { code: null } : false,
    { timeoutMs },
  );
  await s.exited;
  const pid = s.child.pid;
  expect(pid).toBeDefined();
  expect(() => process.kill(pid as number, 0)).toThrow(/ESRCH/);
  // It ended because everything was closed, not because the fallback gave up waiting.
  expect(s.output()).not.toContain("still open after the start-up failure");
  return code.code;
}

/** The one line serve printed on stderr when it gave up (pino's JSON goes to stdout). */
function failureLine(s: Serve): string {
  const lines = s
    .stderr()
    .split("\n")
    .filter((l) => l.startsWith("leasehold: "));
  expect(lines).toHaveLength(1);
  return lines[0] as string;
}

beforeAll(async () => {
  vault = await useVault();
  dir = await mkdtemp(join(tmpdir(), "leasehold-startup-"));
});

afterAll(async () => {
  await Promise.allSettled(running.map((s) => s.stop()));
  await Promise.allSettled(prefixes.map((p) => dropPrefix(p)));
  await vault?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("serve exits non-zero, naming what is wrong, and leaves no process", () => {
  it("a port already in use: exit 2 within 5 s, naming host:port and EADDRINUSE", async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen({ host: "127.0.0.1", port: 0 }, () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const s = serve(await config({ port }));
      expect(await exitOf(s, 5000)).toBe(2);
      expect(failureLine(s)).toBe(
        `leasehold: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`,
      );
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it("a Unix socket another process listens on: exit 2, naming the socket path", async () => {
    const sockDir = await mkdtemp(join(dir, "sock-"));
    await chmod(sockDir, 0o750);
    const path = join(sockDir, "leasehold.sock");
    const other: Server = createServer();
    await new Promise<void>((r) => other.listen(path, () => r()));
    try {
      const s = serve(await config({ port: 0, socket: path }));
      expect(await exitOf(s, 5000)).toBe(2);
      expect(failureLine(s)).toBe(`leasehold: listen.socket: another process is listening on ${path}`);
    } finally {
      await new Promise((r) => other.close(r));
    }
  });

  it("an invalid policy file: exit 1, naming the file and Cedar's error", async () => {
    const file = await config({
      port: await freePort(),
      policy: 'permit (principal, action == Action::"nope", resource);\n',
    });
    const s = serve(file);
    expect(await exitOf(s)).toBe(1);
    const line = failureLine(s);
    expect(line).toContain(join(file, "..", "policy.cedar"));
    expect(line).toMatch(/is invalid: .*unrecognized action `Action::"nope"`/);
  });

  it("a bad signing key found once Redis, Vault and the audit file are open: exit 1, having closed them", async () => {
    const file = await config({ port: await freePort() });
    await mkdir(join(file, "..", "state"), { recursive: true });
    await writeFile(join(file, "..", "state", "signing.jwk"), '{"kty":"bogus"}', { mode: 0o600 });
    const s = serve(file, "--wait-for-deps=0");
    expect(await exitOf(s)).toBe(1);
    expect(failureLine(s)).toMatch(/^leasehold: lease token signing key file .*signing\.jwk is invalid: /);
  });

  it("--wait-for-deps=0 and Redis on a closed port: exit 3 naming redis host:port and the cause, not the password", async () => {
    const redisPort = await closedPort();
    const password = `pw-${randomBytes(8).toString("hex")}`;
    const s = serve(
      await config({ port: await freePort(), redisUrl: `redis://:${password}@127.0.0.1:${redisPort}/0` }),
      "--wait-for-deps=0",
    );
    expect(await exitOf(s)).toBe(3);
    expect(failureLine(s)).toBe(`leasehold: redis 127.0.0.1:${redisPort}: connection refused (ECONNREFUSED)`);
    expect(s.output()).not.toContain(password);
    expect(s.output()).not.toContain("Stream isn't writeable");
  });

  it("--wait-for-deps=0 and a wrong Redis password: exit 3, authentication failed (WRONGPASS)", async () => {
    const redis: TestRedisServer = await startRedisServer();
    try {
      const wrong = `wrong-${randomBytes(8).toString("hex")}`;
      const s = serve(
        await config({
          port: await freePort(),
          redisUrl: `redis://default:${wrong}@127.0.0.1:${redis.port}/0`,
        }),
        "--wait-for-deps=0",
      );
      expect(await exitOf(s)).toBe(3);
      expect(failureLine(s)).toBe(
        `leasehold: redis 127.0.0.1:${redis.port}: authentication failed (WRONGPASS)`,
      );
      expect(s.output()).not.toContain(wrong);
    } finally {
      await redis.stop();
    }
  });

  it("--wait-for-deps=0 and Vault on a closed port: exit 3 naming the Vault address and the cause, not the token", async () => {
    const vaultPort = await closedPort();
    const s = serve(
      await config({ port: await freePort(), vaultAddress: `http://127.0.0.1:${vaultPort}` }),
      "--wait-for-deps=0",
    );
    expect(await exitOf(s)).toBe(3);
    expect(failureLine(s)).toBe(
      `leasehold: vault http://127.0.0.1:${vaultPort}: connection refused (ECONNREFUSED)`,
    );
    expect(s.output()).not.toContain(vault.token);
  });

  it("--wait-for-deps=SECONDS: logs each retry with the cause, then exits 3 saying it waited", async () => {
    const redisPort = await closedPort();
    const s = serve(
      await config({ port: await freePort(), redisUrl: `redis://127.0.0.1:${redisPort}/0` }),
      "--wait-for-deps=1",
    );
    expect(await exitOf(s)).toBe(3);
    expect(failureLine(s)).toBe(
      `leasehold: redis 127.0.0.1:${redisPort}: connection refused (ECONNREFUSED) (still, after waiting 1 s)`,
    );
    expect(s.output()).toContain(
      `"msg":"waiting for redis: redis 127.0.0.1:${redisPort}: connection refused (ECONNREFUSED)"`,
    );
  });
});

describe("a running sidecar names its dependencies' faults", () => {
  it("/readyz while Redis is down names the address and the cause, never the password", async () => {
    const redis = await startRedisServer();
    const port = await freePort();
    const password = redis.root.password;
    let stopped = false;
    try {
      const s = serve(
        await config({ port, redisUrl: `redis://default:${password}@127.0.0.1:${redis.port}/0` }),
      );
      const url = `http://127.0.0.1:${port}`;
      const readyz = async () => {
        const r = await fetch(`${url}/readyz`);
        return { status: r.status, text: await r.text() };
      };
      await waitFor("the sidecar to be ready", async () => (await readyz()).status === 200, {
        signal: abortWhenExited(s.exited, "the sidecar"),
      });
      await redis.stop();
      stopped = true;
      const refused = `redis 127.0.0.1:${redis.port}: connection refused (ECONNREFUSED)`;
      const seen: string[] = [];
      // Right after the drop it may say "connection lost"; once a reconnect is refused, it says so.
      const down = await waitFor(
        () => `/readyz to name ${refused}; seen: ${seen.join(" | ")}`,
        async () => {
          const r = await readyz();
          seen.push(r.text);
          return r.status === 503 && r.text.includes(refused) ? r : false;
        },
      );
      const body = JSON.parse(down.text) as {
        status: string;
        checks: Record<string, boolean>;
        reasons: Record<string, string>;
      };
      expect(body.status).toBe("unavailable");
      expect(body.checks).toMatchObject({ redis: false, vault: true, audit: true });
      expect(body.reasons.redis).toBe(refused);
      expect(body.reasons.vault).toBeUndefined();
      for (const text of seen) {
        if (text.includes('"unavailable"')) expect(text).toContain(`redis 127.0.0.1:${redis.port}: `);
        expect(text).not.toContain(password);
      }
      expect(down.text).not.toContain(password);
      await waitFor("a Redis error in the log naming the address", () =>
        s.output().includes(`redis 127.0.0.1:${redis.port}: connection refused (ECONNREFUSED)`),
      );
      expect(s.output()).not.toContain(password);
      expect(s.output()).not.toContain("Stream isn't writeable");
      await s.stop();
    } finally {
      if (!stopped) await redis.stop();
    }
  });

  it("/readyz while Vault is sealed says `vault <address>: sealed`", async (ctx) => {
    if (!vault.dev) ctx.skip();
    const port = await freePort();
    const s = serve(await config({ port }));
    const url = `http://127.0.0.1:${port}`;
    await waitFor("the sidecar to be ready", async () => (await fetch(`${url}/readyz`)).status === 200, {
      signal: abortWhenExited(s.exited, "the sidecar"),
    });
    vault.dev?.seal();
    try {
      const body = await waitFor("/readyz to say 503", async () => {
        const r = await fetch(`${url}/readyz`);
        return r.status === 503 ? ((await r.json()) as { reasons: Record<string, string> }) : false;
      });
      expect(body.reasons.vault).toBe(`vault ${vault.address}: sealed`);
      expect(body.reasons.redis).toBeUndefined();
    } finally {
      vault.dev?.unseal();
    }
    await s.stop();
  });

  it("waits for a Redis that comes up after serve starts, then becomes ready", async () => {
    const redisPort = await closedPort();
    const port = await freePort();
    const s = serve(await config({ port, redisUrl: `redis://127.0.0.1:${redisPort}/0` }));
    await waitFor(
      "serve to log that it waits for Redis",
      () =>
        s
          .output()
          .includes(`waiting for redis: redis 127.0.0.1:${redisPort}: connection refused (ECONNREFUSED)`),
      { signal: abortWhenExited(s.exited, "the sidecar") },
    );
    const redis = spawn("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", ""], {
      stdio: "ignore",
    });
    const redisExited = new Promise((r) => redis.once("exit", r));
    try {
      await waitFor(
        "/readyz to answer 200",
        async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200,
        { signal: abortWhenExited(s.exited, "the sidecar") },
      );
      expect(s.output()).toContain("leasehold listening");
      await s.stop();
    } finally {
      redis.kill("SIGKILL");
      await redisExited;
    }
  });
});
