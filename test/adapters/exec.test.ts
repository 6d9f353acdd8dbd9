import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdapterContext, AdapterError } from "../../adapters/adapter.js";
import {
  checkExecAccountName,
  type ExecTarget,
  execAdapter,
  execConfig,
  REDACTED,
  scrubAndCap,
  scrubSecrets,
} from "../../adapters/exec/index.js";
import { waitFor } from "../support/wait-for.js";
import { adapterConformance, testPassword } from "./conformance.js";

const FIXTURE = fileURLToPath(new URL("../fixtures/exec-adapter/store-passwords.mjs", import.meta.url));

interface Store {
  admin: { username: string; password: string };
  accounts: Record<string, string>;
  sessions: Record<string, string[]>;
}

/** A store file for the fixture command: the "target system" of these tests. */
async function makeStore(dir: string, admin: { username: string; password: string }): Promise<string> {
  const file = join(dir, "store.json");
  await writeFile(file, JSON.stringify({ admin, accounts: {}, sessions: {} } satisfies Store), {
    mode: 0o600,
  });
  return file;
}
async function edit(file: string, change: (s: Store) => void): Promise<void> {
  const store = JSON.parse(await readFile(file, "utf8")) as Store;
  change(store);
  await writeFile(file, JSON.stringify(store));
}
function fixtureTarget(storeFile: string, extra: Partial<ExecTarget> = {}): ExecTarget {
  return execConfig.parse({ command: [process.execPath, FIXTURE, storeFile], timeoutSeconds: 20, ...extra });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "leasehold-exec-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

adapterConformance({
  name: "exec (sample store-passwords command)",
  adapter: execAdapter,
  async setup() {
    const admin = { username: "dba", password: testPassword() };
    const own = await mkdtemp(join(dir, "conformance-"));
    const store = await makeStore(own, admin);
    return {
      target: fixtureTarget(store),
      admin,
      createAccount: (name, password) =>
        edit(store, (s) => {
          s.accounts[name] = password;
        }),
      dropAccount: (name) =>
        edit(store, (s) => {
          delete s.accounts[name];
        }),
      // The fixture answers 69 (unavailable) when its store's folder is missing.
      unreachableTarget: fixtureTarget(join(own, "missing", "store.json")),
      async openSession(name) {
        const id = randomBytes(4).toString("hex");
        await edit(store, (s) => {
          s.sessions[name] = [...(s.sessions[name] ?? []), id];
        });
        return {
          async alive() {
            const s = JSON.parse(await readFile(store, "utf8")) as Store;
            return (s.sessions[name] ?? []).includes(id);
          },
          close: () =>
            edit(store, (s) => {
              s.sessions[name] = (s.sessions[name] ?? []).filter((x) => x !== id);
            }),
        };
      },
      teardown: () => rm(own, { recursive: true, force: true }),
    };
  },
});

describe("exec adapter specifics", () => {
  const lines: string[] = [];
  const logged: Array<Record<string, unknown>> = [];
  const secrets: string[] = [];
  const pw = (): string => {
    const p = testPassword();
    secrets.push(p);
    return p;
  };
  const admin = { username: "dba", password: testPassword() };
  const ctx = (withAdmin = true): AdapterContext => ({
    admin: withAdmin ? admin : undefined,
    log: {
      debug: (o, m) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`),
      info: (o, m) => {
        logged.push(o as Record<string, unknown>);
        lines.push(`${JSON.stringify(o)} ${m ?? ""}`);
      },
      warn: (o, m) => {
        logged.push(o as Record<string, unknown>);
        lines.push(`${JSON.stringify(o)} ${m ?? ""}`);
      },
      error: (o, m) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`),
    },
    timeoutMs: 20_000,
  });
  let store: string;

  beforeAll(async () => {
    secrets.push(admin.password);
    store = await makeStore(await mkdtemp(join(dir, "specifics-")), admin);
  });

  async function account(name: string): Promise<string> {
    const password = pw();
    await edit(store, (s) => {
      s.accounts[name] = password;
    });
    return password;
  }
  const lastLog = () => logged[logged.length - 1] ?? {};

  it("sends the request on stdin only: argv is the configured one and the environment is not inherited", async () => {
    const current = await account("report");
    const t = fixtureTarget(store, { env: { FIXTURE_REPORT: "1", SITE: "lab" } });
    await execAdapter.rotate(t, { account: "report", current, next: pw() }, ctx());
    const stdout = String(lastLog().stdout);
    expect(stdout).toContain(`argv=${JSON.stringify([store])}`);
    expect(stdout).toContain(`env=${JSON.stringify(["FIXTURE_REPORT", "PATH", "SITE"])}`);
    // Nothing had to be scrubbed from argv or env: no secret was ever there.
    expect(stdout.split("\n").filter((l) => l.startsWith("argv=") || l.startsWith("env="))).not.toContain(
      REDACTED,
    );
    expect(stdout).not.toContain(REDACTED);
  });

  it("scrubs every secret of the request from stdout and stderr, raw and JSON-escaped", async () => {
    const current = await account("echo");
    // Quotes and backslashes appear escaped when the command echoes its JSON request.
    const next = `${pw().slice(0, 20)}"q\\b`;
    secrets.push(next);
    const t = fixtureTarget(store, { env: { FIXTURE_ECHO: "1" } });
    await execAdapter.rotate(t, { account: "echo", current, previous: pw(), next }, ctx());
    const entry = lastLog();
    expect(String(entry.stdout)).toContain('"account":"echo"');
    expect(String(entry.stdout)).toContain(REDACTED);
    expect(String(entry.stderr)).toContain(REDACTED);
    const text = JSON.stringify(entry);
    for (const s of [current, next, JSON.stringify(next).slice(1, -1), admin.password]) {
      expect(text.includes(s)).toBe(false);
    }
    expect(
      await execAdapter.verify(fixtureTarget(store), { username: "echo", password: next }, ctx()),
    ).toEqual({
      valid: true,
    });
  });

  it("a timeout kills the whole process group and is retryable", async () => {
    const pidFile = join(dir, `grandchild-${randomBytes(3).toString("hex")}`);
    const t = fixtureTarget(store, {
      timeoutSeconds: 1,
      env: { FIXTURE_SLEEP_MS: "30000", FIXTURE_GRANDCHILD_PIDFILE: pidFile },
    });
    const err = await execAdapter
      .verify(t, { username: "x", password: pw() }, ctx())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe("timeout");
    expect((err as AdapterError).retryable).toBe(true);
    expect(await gone(Number(readFileSync(pidFile, "utf8")))).toBe(true);
  });

  it("helpers the command leaves behind are ended when it exits", async () => {
    const pidFile = join(dir, `leftover-${randomBytes(3).toString("hex")}`);
    const t = fixtureTarget(store, { env: { FIXTURE_GRANDCHILD_PIDFILE: pidFile } });
    expect((await execAdapter.verify(t, { username: "nobody", password: pw() }, ctx())).valid).toBe(false);
    expect(await gone(Number(readFileSync(pidFile, "utf8")))).toBe(true);
  });

  it("maps exit statuses: 65 rejected, 67 no account, 69/75 retryable, 77 auth, others fail", async () => {
    const cases: Array<[string, string, boolean]> = [
      ["65", "password_rejected", false],
      ["64", "invalid", false],
      ["67", "invalid", false],
      ["69", "unreachable", true],
      ["75", "failed", true],
      ["77", "auth_failed", false],
      ["3", "failed", false],
      ["1", "failed", false],
    ];
    for (const [status, code, retryable] of cases) {
      const t = fixtureTarget(store, { env: { FIXTURE_EXIT: status } });
      const err = await execAdapter.rotate(t, { account: "any", next: pw() }, ctx()).catch((e: unknown) => e);
      expect(err, status).toBeInstanceOf(AdapterError);
      expect((err as AdapterError).code, status).toBe(code);
      expect((err as AdapterError).retryable, status).toBe(retryable);
    }
    // For verify, 1 is the answer "invalid", 2 is a fault.
    const one = fixtureTarget(store, { env: { FIXTURE_EXIT: "1" } });
    expect((await execAdapter.verify(one, { username: "a", password: pw() }, ctx())).valid).toBe(false);
    const two = fixtureTarget(store, { env: { FIXTURE_EXIT: "2" } });
    await expect(execAdapter.verify(two, { username: "a", password: pw() }, ctx())).rejects.toBeInstanceOf(
      AdapterError,
    );
  });

  it("quotes the command's stderr in the error, scrubbed", async () => {
    const t = execConfig.parse({
      command: ["/bin/sh", "-c", 'read -r line; echo "vendor says: $line" >&2; exit 3'],
    });
    const next = pw();
    const err = (await execAdapter
      .rotate(t, { account: "a", next }, ctx())
      .catch((e: unknown) => e)) as AdapterError;
    expect(err.message).toContain("vendor says:");
    expect(err.message).toContain(REDACTED);
    expect(err.message.includes(next)).toBe(false);
  });

  it("a command that cannot start is a non-retryable invalid error", async () => {
    const t = execConfig.parse({ command: [join(dir, "no-such-program")] });
    const err = await execAdapter
      .verify(t, { username: "a", password: pw() }, ctx())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe("invalid");
    expect((err as AdapterError).retryable).toBe(false);
  });

  it("terminate needs the session count as the last line of stdout", async () => {
    const t = fixtureTarget(store, { env: { FIXTURE_EXIT: "0" } });
    const err = await execAdapter.terminateSessions?.(t, "a", ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).message).toMatch(/number of sessions/);
  });

  it("caps what it logs of a large output, and never blocks on it", async () => {
    const t = execConfig.parse({
      command: ["/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; echo; echo 0"],
    });
    expect(await execAdapter.terminateSessions?.(t, "a", ctx())).toBe(0);
    const stdout = String(lastLog().stdout);
    expect(stdout.length).toBeLessThan(4200);
    expect(stdout.endsWith("…[truncated]")).toBe(true);
  });

  it("scrubSecrets removes longer secrets first and JSON-escaped forms", () => {
    expect(scrubSecrets("abcdef abc", ["abc", "abcdef"])).toBe(`${REDACTED} ${REDACTED}`);
    expect(scrubSecrets('x "a\\"b" y', ['a"b'])).toBe(`x "${REDACTED}" y`);
    expect(scrubSecrets("keep", [""])).toBe("keep");
    // A cap after scrubbing cannot leave the start of a secret behind.
    expect(scrubAndCap(`${"-".repeat(8)}SECRETVALUE`, ["SECRETVALUE"], 12)).toBe(
      `${"-".repeat(8)}[red…[truncated]`,
    );
  });

  it("the config schema names the field it refuses", () => {
    const issues = (value: unknown) =>
      execConfig.safeParse(value).error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`) ?? [];
    expect(execConfig.parse({ command: ["/bin/true"] })).toEqual({
      command: ["/bin/true"],
      timeoutSeconds: 30,
    });
    expect(issues({ command: ["rotate.sh"] })[0]).toMatch(/^command\.0: .*absolute/);
    expect(issues({ command: [] })[0]).toMatch(/^command: /);
    expect(issues({ command: ["/bin/true"], timeoutSeconds: 601 })[0]).toMatch(/^timeoutSeconds: /);
    expect(issues({ command: ["/bin/true"], env: { "BAD-NAME": "x" } })[0]).toMatch(/^env\./);
    expect(issues({ command: ["/bin/true"], cwd: "relative" })[0]).toMatch(/^cwd: /);
    expect(issues({ command: ["/bin/true"], shell: true })).toHaveLength(1);
  });

  it("checkAccountName refuses control characters and overlong names only", () => {
    for (const ok of ["app", 'x"; rm -rf /', "$(reboot)", "ünï 😀", "a".repeat(1024)]) {
      expect(checkExecAccountName(ok), ok.slice(0, 20)).toBeNull();
    }
    for (const bad of ["", "a\0b", "line\nbreak", "a".repeat(1025), "lone\ud800"]) {
      expect(checkExecAccountName(bad), JSON.stringify(bad).slice(0, 20)).not.toBeNull();
    }
  });

  it("logs no password", () => {
    expect(lines.length).toBeGreaterThan(0);
    const leaks = secrets.filter((s) => lines.some((l) => l.includes(s)));
    expect(leaks.length, `${leaks.length} password(s) in ${lines.length} lines`).toBe(0);
  });
});

/** True once `pid` is gone or a zombie (dead, awaiting its reaper); throws if it never is. */
function gone(pid: number): Promise<boolean> {
  return waitFor(`process ${pid} to end`, () => {
    const status = `/proc/${pid}/status`;
    if (!existsSync(status)) return true;
    const state = /State:\s+(\S)/.exec(readFileSync(status, "utf8").toString())?.[1];
    return state === "Z" || state === "X";
  });
}
