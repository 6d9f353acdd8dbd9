import { execFile, execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { completionTree } from "../../sidecar/cli/completion.js";
import { buildProgram } from "../../sidecar/cli/program.js";

/**
 * `leasehold completion bash|zsh|fish` (issue 18 item 5): each script is generated from the
 * command tree, loads in its shell, and completes commands, subcommands, options and named
 * values. Runs the CLI from source; the shells as installed (zsh and fish are skipped, saying
 * so, when absent).
 */

const ROOT = join(import.meta.dirname, "..", "..");

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, ["--import", "tsx", "sidecar/cli/main.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, LEASEHOLD_CONFIG: join(ROOT, "no-such-config.yaml") },
  }).then(
    (r) => ({ code: 0, ...r }),
    (err: { code: number; stdout: string; stderr: string }) => err,
  );
}

function has(shell: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${shell}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Runs `script` in `shell` and answers its stdout. */
async function run(shell: string, args: string[]): Promise<string> {
  return (await promisify(execFile)(shell, args, { cwd: work })).stdout;
}

let work: string;
const scripts: Record<string, string> = {};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "lh-completion-"));
  for (const shell of ["bash", "zsh", "fish"]) {
    const r = await cli("completion", shell);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    scripts[shell] = join(work, `leasehold.${shell}`);
    await writeFile(scripts[shell] as string, r.stdout);
  }
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("the command tree the scripts are made from", () => {
  it("has every group, its subcommands and their long options", () => {
    const tree = completionTree(buildProgram());
    const at = (p: string) => tree.find((n) => n.path === p);
    expect(at("")?.commands.map((c) => c.name)).toEqual(
      expect.arrayContaining(["leases", "resources", "approvals", "audit", "completion", "exec"]),
    );
    expect(at("leases")?.commands.map((c) => c.name)).toEqual(["list", "watch", "revoke", "help"]);
    expect(at("leases list")?.options.find((o) => o.long === "--output")).toMatchObject({
      takesValue: true,
      choices: ["table", "json"],
    });
    expect(at("")?.options.map((o) => o.long)).toEqual(
      expect.arrayContaining(["--config", "--json", "--identity-key", "--help", "--version"]),
    );
  });
});

describe("bash", () => {
  /** COMPREPLY after completing the last of `words` (the word under the cursor). */
  async function complete(...words: string[]): Promise<string[]> {
    const quoted = words.map((w) => `'${w}'`).join(" ");
    const out = await run("bash", [
      "-c",
      `source '${scripts.bash}'; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _leasehold; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ]);
    return out.split("\n").filter(Boolean);
  }

  it("loads with process substitution and registers _leasehold for leasehold", async () => {
    const out = await run("bash", [
      "-c",
      `cd '${ROOT}' && source <(node --import tsx sidecar/cli/main.ts completion bash) && complete -p leasehold`,
    ]);
    expect(out.trim()).toBe("complete -o default -F _leasehold leasehold");
  });

  it("completes commands, subcommands, options and option values", async () => {
    expect(await complete("leasehold", "lea")).toEqual(["leases"]);
    expect(await complete("leasehold", "a")).toEqual(["adapters", "approvals", "audit", "agent"]);
    expect(await complete("leasehold", "leases", "")).toEqual(["list", "watch", "revoke", "help"]);
    expect(await complete("leasehold", "--config", "x.yaml", "leases", "l")).toEqual(["list"]);
    expect(await complete("leasehold", "audit", "query", "--ev")).toEqual(["--event"]);
    expect(await complete("leasehold", "leases", "list", "--")).toEqual(
      expect.arrayContaining(["--resource", "--agent", "--output", "--config", "--json"]),
    );
    expect(await complete("leasehold", "leases", "list", "--output", "")).toEqual(["table", "json"]);
    expect(await complete("leasehold", "checkout", "--output", "")).toEqual(["env", "json"]);
  });

  it("leaves a file argument, and anything after --, to the shell's file completion", async () => {
    expect(await complete("leasehold", "--config", "")).toEqual([]);
    expect(await complete("leasehold", "exec", "--resource", "db", "--", "ps")).toEqual([]);
  });
});

describe.skipIf(!has("zsh"))("zsh", () => {
  it("passes zsh -n", async () => {
    await run("zsh", ["-n", scripts.zsh as string]);
  });

  it("completes subcommands and values (compsys stubbed: what _describe and compadd are given)", async () => {
    const stubs =
      'compdef() { :; }; _describe() { print -rl -- "${(@P)4}"; }; compadd() { print -rl -- "${(@P)2}"; }; _files() { print FILES; }';
    const out = await run("zsh", [
      "-c",
      `${stubs}; source '${scripts.zsh}'; words=(leasehold --json leases ''); CURRENT=4; _leasehold; print -r -- SEP; words=(leasehold leases list --output ''); CURRENT=5; _leasehold`,
    ]);
    const [subs, values] = out.split("SEP\n");
    expect(
      subs
        ?.split("\n")
        .filter(Boolean)
        .map((l) => l.split(":")[0]),
    ).toEqual(["list", "watch", "revoke", "help"]);
    expect(values?.trim().split("\n")).toEqual(["table", "json"]);
  });
});

describe.skipIf(!has("fish"))("fish", () => {
  it("passes fish -n", async () => {
    await run("fish", ["-n", scripts.fish as string]);
  });

  it("completes commands, subcommands and option values", async () => {
    const names = async (line: string) =>
      (await run("fish", ["-c", `source '${scripts.fish}'; complete -C '${line}'`]))
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split("\t")[0]);
    expect(await names("leasehold lea")).toEqual(["leases"]);
    expect(await names("leasehold --config x.yaml leases l")).toEqual(["list"]);
    expect(await names("leasehold leases list --output ")).toEqual(["json", "table"]);
  });
});

describe("an unknown shell", () => {
  it("is refused, naming bash, zsh and fish", async () => {
    const r = await cli("completion", "bsh");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim()).toBe(
      'leasehold: <shell>: unknown value (did you mean "bash"?); valid values: bash, zsh, fish',
    );
  });
});
