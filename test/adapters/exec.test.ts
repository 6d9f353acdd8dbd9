import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { type AdapterContext, AdapterError } from "../../adapters/adapter.js";
import {
  checkExecAccountName,
  createExecAdapter,
  type ExecCommand,
  ExecCommandsError,
  execAdapter,
  logExcerpt,
  lookupOsUser,
  NOT_A_COMMAND_NAME,
  REDACTED,
  resolveCommands,
  scrubAndCap,
  scrubSecrets,
  UNKNOWN_COMMAND,
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
async function makeStore(file: string, admin: { username: string; password: string }): Promise<string> {
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
/** The operator's entry for the fixture command over `storeFile`. */
function fixtureCommand(storeFile: string, extra: Partial<ExecCommand> = {}): ExecCommand {
  return { command: [process.execPath, FIXTURE, storeFile], timeoutSeconds: 20, ...extra };
}
/** An adapter whose operator's table holds this one command, and the connection naming it. */
function withCommand(command: ExecCommand) {
  const adapter = createExecAdapter({ commands: { "under-test": command } });
  return { adapter, target: adapter.config.parse({ command: "under-test" }) };
}

// Fixed before the suites are declared: the adapter's table is the operator's, known up front.
const dir = mkdtempSync(join(tmpdir(), "leasehold-exec-"));
const conformanceDir = join(dir, "conformance");
const conformanceAdapter = createExecAdapter({
  commands: {
    "store-passwords": fixtureCommand(join(conformanceDir, "store.json")),
    // The fixture answers 69 (unavailable) when its store's folder is missing.
    "store-unreachable": fixtureCommand(join(conformanceDir, "missing", "store.json")),
  },
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

adapterConformance({
  name: "exec (sample store-passwords command)",
  adapter: conformanceAdapter,
  async setup() {
    const admin = { username: "dba", password: testPassword() };
    await mkdir(conformanceDir, { recursive: true });
    const store = await makeStore(join(conformanceDir, "store.json"), admin);
    return {
      target: { command: "store-passwords" },
      admin,
      createAccount: (name, password) =>
        edit(store, (s) => {
          s.accounts[name] = password;
        }),
      dropAccount: (name) =>
        edit(store, (s) => {
          delete s.accounts[name];
        }),
      unreachableTarget: { command: "store-unreachable" },
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
      teardown: () => rm(conformanceDir, { recursive: true, force: true }),
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
  secrets.push(admin.password);
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
  let storeFile: string | undefined;
  async function store(): Promise<string> {
    if (storeFile === undefined) {
      const own = join(dir, "specifics");
      await mkdir(own, { recursive: true });
      storeFile = await makeStore(join(own, "store.json"), admin);
    }
    return storeFile;
  }
  const fixture = async (extra: Partial<ExecCommand> = {}) =>
    withCommand(fixtureCommand(await store(), extra));

  async function account(name: string): Promise<string> {
    const password = pw();
    await edit(await store(), (s) => {
      s.accounts[name] = password;
    });
    return password;
  }
  const lastLog = () => logged[logged.length - 1] ?? {};

  it("sends the request on stdin only: argv is the configured one and the environment is not inherited", async () => {
    const current = await account("report");
    const { adapter, target } = await fixture({ env: { FIXTURE_REPORT: "1", SITE: "lab" } });
    await adapter.rotate(target, { account: "report", current, next: pw() }, ctx());
    const stdout = String(lastLog().stdout);
    expect(stdout).toContain(`argv=${JSON.stringify([await store()])}`);
    expect(stdout).toContain(`env=${JSON.stringify(["FIXTURE_REPORT", "PATH", "SITE"])}`);
    // Nothing had to be scrubbed from argv or env: no secret was ever there.
    expect(stdout).not.toContain(REDACTED);
    expect(lastLog().command).toBe("under-test");
  });

  it("scrubs every secret of the request from stdout and stderr, raw and JSON-escaped", async () => {
    const current = await account("echo");
    // Quotes and backslashes appear escaped when the command echoes its JSON request.
    const next = `${pw().slice(0, 20)}"q\\b`;
    secrets.push(next);
    const { adapter, target } = await fixture({ env: { FIXTURE_ECHO: "1" } });
    await adapter.rotate(target, { account: "echo", current, previous: pw(), next }, ctx());
    const entry = lastLog();
    expect(String(entry.stdout)).toContain('"account":"echo"');
    expect(String(entry.stdout)).toContain(REDACTED);
    expect(String(entry.stderr)).toContain(REDACTED);
    const text = JSON.stringify(entry);
    for (const s of [current, next, JSON.stringify(next).slice(1, -1), admin.password]) {
      expect(text.includes(s)).toBe(false);
    }
    const plain = await fixture();
    expect(await plain.adapter.verify(plain.target, { username: "echo", password: next }, ctx())).toEqual({
      valid: true,
    });
  });

  it("a registration names one of the operator's commands; a program, a path or an argument list is refused, naming the field", () => {
    const { adapter } = withCommand(fixtureCommand("/nonexistent/store.json"));
    const issues = (value: unknown) =>
      adapter.config.safeParse(value).error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`) ?? [];
    expect(adapter.config.parse({ command: "under-test" })).toEqual({ command: "under-test" });
    for (const smuggled of [
      ["/bin/sh", "-c", "cat $ADMIN_TOKEN_FILE >&2"],
      "/bin/sh",
      "sh -c id",
      "../under-test",
      "",
      42,
      { name: "under-test" },
    ]) {
      expect(issues({ command: smuggled }), JSON.stringify(smuggled)).toEqual([
        `command: ${NOT_A_COMMAND_NAME}`,
      ]);
    }
    expect(issues({ command: "rotate-mainframe" })).toEqual([`command: ${UNKNOWN_COMMAND}`]);
    // An inherited property of a plain object is no command either.
    expect(issues({ command: "constructor" })).toEqual([`command: ${UNKNOWN_COMMAND}`]);
    expect(issues({})[0]).toMatch(/^command: /);
    // What used to travel with the command is the operator's now.
    expect(issues({ command: "under-test", timeoutSeconds: 5 })).toHaveLength(1);
    expect(issues({ command: "under-test", env: { A: "1" } })).toHaveLength(1);
  });

  it("the registry's adapter, before the config is read, knows no command and runs nothing", async () => {
    expect(execAdapter.config.safeParse({ command: "under-test" }).success).toBe(false);
    const marker = join(dir, `never-${randomBytes(3).toString("hex")}`);
    // A connection stored before commands were the operator's still carries a program: never run.
    const stored = { command: ["/bin/sh", "-c", `touch ${marker}`] } as unknown as { command: string };
    const { adapter } = withCommand(fixtureCommand(await store()));
    for (const a of [execAdapter, adapter]) {
      const err = await a.verify(stored, { username: "x", password: pw() }, ctx()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AdapterError);
      expect((err as AdapterError).retryable).toBe(false);
      expect((err as AdapterError).message).toContain(UNKNOWN_COMMAND);
      const unknown = await a
        .rotate({ command: "not-listed" }, { account: "x", next: pw() }, ctx())
        .catch((e: unknown) => e);
      expect((unknown as AdapterError).message).toContain('"not-listed"');
    }
    expect(existsSync(marker)).toBe(false);
  });

  it("no output of the command is in an error; the log has a bounded, scrubbed, control-free excerpt", async () => {
    const { adapter, target } = withCommand({
      command: [
        "/bin/sh",
        "-c",
        // Echoes its request, then terminal escapes, a bidi override and an OSC-52 clipboard write.
        'cat >&2; printf "vendor says: \\033[2J\\033]52;c;ZXZpbA==\\007\\342\\200\\256evil\\r\\n" >&2; exit 3',
      ],
      timeoutSeconds: 20,
    });
    const next = pw();
    const err = (await adapter
      .rotate(target, { account: "a", next }, ctx())
      .catch((e: unknown) => e)) as AdapterError;
    expect(err).toBeInstanceOf(AdapterError);
    expect(err.message).toBe("exec: rotate: the command failed (exit 3)");
    const stderr = String(lastLog().stderr);
    expect(stderr).toContain("vendor says:");
    expect(stderr).toContain(REDACTED);
    expect(stderr.includes(next)).toBe(false);
    const unprintable = [...stderr].filter((ch) => /\p{Cc}|[\u202a-\u202e\u2066-\u2069]/u.test(ch));
    expect(unprintable).toEqual([]);
    for (const status of ["64", "65", "67", "69", "75", "77"]) {
      const f = await fixture({ env: { FIXTURE_ECHO: "1", FIXTURE_EXIT: status } });
      const e = (await f.adapter
        .rotate(f.target, { account: "a", next }, ctx())
        .catch((x: unknown) => x)) as AdapterError;
      expect(e.message, status).toMatch(new RegExp(`^exec: rotate: [a-z ]+ \\(exit ${status}\\)$`));
    }
  });

  it("a timeout kills the whole process group and is retryable", async () => {
    const pidFile = join(dir, `grandchild-${randomBytes(3).toString("hex")}`);
    const { adapter, target } = await fixture({
      timeoutSeconds: 1,
      env: { FIXTURE_SLEEP_MS: "30000", FIXTURE_GRANDCHILD_PIDFILE: pidFile },
    });
    const err = await adapter
      .verify(target, { username: "x", password: pw() }, ctx())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe("timeout");
    expect((err as AdapterError).retryable).toBe(true);
    expect(await gone(Number(readFileSync(pidFile, "utf8")))).toBe(true);
  });

  it("helpers the command leaves behind are ended when it exits", async () => {
    const pidFile = join(dir, `leftover-${randomBytes(3).toString("hex")}`);
    const { adapter, target } = await fixture({ env: { FIXTURE_GRANDCHILD_PIDFILE: pidFile } });
    expect((await adapter.verify(target, { username: "nobody", password: pw() }, ctx())).valid).toBe(false);
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
      const { adapter, target } = await fixture({ env: { FIXTURE_EXIT: status } });
      const err = await adapter
        .rotate(target, { account: "any", next: pw() }, ctx())
        .catch((e: unknown) => e);
      expect(err, status).toBeInstanceOf(AdapterError);
      expect((err as AdapterError).code, status).toBe(code);
      expect((err as AdapterError).retryable, status).toBe(retryable);
    }
    // For verify, 1 is the answer "invalid", 2 is a fault.
    const one = await fixture({ env: { FIXTURE_EXIT: "1" } });
    expect((await one.adapter.verify(one.target, { username: "a", password: pw() }, ctx())).valid).toBe(
      false,
    );
    const two = await fixture({ env: { FIXTURE_EXIT: "2" } });
    await expect(
      two.adapter.verify(two.target, { username: "a", password: pw() }, ctx()),
    ).rejects.toBeInstanceOf(AdapterError);
    // verify-admin: 64 means "cannot check up front", trusted; 1 is a refusal.
    const usage = await fixture({ env: { FIXTURE_EXIT: "64" } });
    expect(await usage.adapter.verifyAdmin?.(usage.target, admin, ctx())).toEqual({ valid: true });
    expect((await one.adapter.verifyAdmin?.(one.target, admin, ctx()))?.valid).toBe(false);
  });

  it("a command that cannot start is a non-retryable invalid error", async () => {
    const { adapter, target } = withCommand({ command: [join(dir, "no-such-program")], timeoutSeconds: 5 });
    const err = await adapter
      .verify(target, { username: "a", password: pw() }, ctx())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe("invalid");
    expect((err as AdapterError).retryable).toBe(false);
  });

  it("terminate needs the session count as the last line of stdout", async () => {
    const { adapter, target } = await fixture({ env: { FIXTURE_EXIT: "0" } });
    const err = await adapter.terminateSessions?.(target, "a", ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).message).toMatch(/number of sessions/);
  });

  it("caps what it logs of a large output, and never blocks on it", async () => {
    const { adapter, target } = withCommand({
      command: ["/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; echo; echo 0"],
      timeoutSeconds: 20,
    });
    expect(await adapter.terminateSessions?.(target, "a", ctx())).toBe(0);
    const stdout = String(lastLog().stdout);
    expect(stdout.length).toBeLessThan(1100);
    expect(stdout.endsWith("…[truncated]")).toBe(true);
  });

  it.runIf(process.getuid?.() === 0)(
    "runs the command as the operator's `user` (uid, primary gid, no supplementary groups)",
    async () => {
      const nobody = lookupOsUser("nobody");
      expect(nobody).toBeDefined();
      const { adapter, target } = withCommand({
        command: ["/bin/sh", "-c", 'echo "groups=$(id -G)" >&2; id -u'],
        timeoutSeconds: 20,
        user: "nobody",
        cwd: "/",
      });
      expect(await adapter.terminateSessions?.(target, "a", ctx())).toBe(nobody?.uid);
      expect(String(lastLog().stderr)).toBe(`groups=${nobody?.gid}`);
    },
  );

  it("a `user` other than its own needs a root sidecar; an unknown user is refused; both name the key", () => {
    const nobody = { uid: 65534, gid: 65534 };
    const table = { commands: { rotate: { command: ["/bin/true"], timeoutSeconds: 5, user: "nobody" } } };
    expect(() => resolveCommands(table, { uid: 1000, lookupUser: () => nobody })).toThrow(ExecCommandsError);
    expect(() => resolveCommands(table, { uid: 1000, lookupUser: () => nobody })).toThrow(
      /^exec\.commands\.rotate\.user: the sidecar does not run as root/,
    );
    // The sidecar's own user is fine without root: nothing changes hands.
    expect(
      resolveCommands(table, { uid: 65534, lookupUser: () => nobody }).get("rotate")?.runAs,
    ).toBeUndefined();
    expect(resolveCommands(table, { uid: 0, lookupUser: () => nobody }).get("rotate")?.runAs).toEqual(nobody);
    expect(() => resolveCommands(table, { uid: 0, lookupUser: () => undefined })).toThrow(
      /^exec\.commands\.rotate\.user: there is no OS user "nobody"$/,
    );
    expect(() =>
      createExecAdapter({ commands: { rotate: { command: ["rotate.sh"], timeoutSeconds: 5 } } }),
    ).toThrow(/^exec\.commands\.rotate\.command: /);
    expect(lookupOsUser("root")).toEqual({ uid: 0, gid: 0 });
    expect(lookupOsUser(`no-such-user-${randomBytes(3).toString("hex")}`)).toBeUndefined();
    expect(lookupOsUser("root:x:0")).toBeUndefined();
  });

  it("scrubSecrets removes longer secrets first and JSON-escaped forms", () => {
    expect(scrubSecrets("abcdef abc", ["abc", "abcdef"])).toBe(`${REDACTED} ${REDACTED}`);
    expect(scrubSecrets('x "a\\"b" y', ['a"b'])).toBe(`x "${REDACTED}" y`);
    expect(scrubSecrets("keep", [""])).toBe("keep");
    // A cap after scrubbing cannot leave the start of a secret behind.
    expect(scrubAndCap(`${"-".repeat(8)}SECRETVALUE`, ["SECRETVALUE"], 12)).toBe(
      `${"-".repeat(8)}[red…[truncated]`,
    );
    // A secret is scrubbed before control characters go, so none survives split by one.
    expect(logExcerpt("a\u001b[1mSEC\nRET\u202e SECRET\u0007", ["SECRET"], 100)).toBe(
      `a [1mSEC RET  ${REDACTED}`,
    );
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
