import { type Command, CommanderError } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../../sidecar/cli/program.js";

/**
 * Issue 18 item 5, "help that teaches": every command of the whole tree buildProgram makes has
 * a one-line description and an example in its --help, and a mistyped subcommand of any group
 * gets a "did you mean". Walks the tree, so a command added later cannot be forgotten.
 */

/** Every command below `cmd`, each with its path from the program ("leases list"). */
function walk(cmd: Command, path: string[] = []): Array<{ path: string[]; cmd: Command }> {
  return cmd.commands.flatMap((sub) => {
    const p = [...path, sub.name()];
    return [{ path: p, cmd: sub }, ...walk(sub, p)];
  });
}

/** `cmd`'s --help as a user sees it, text added by addHelpText included. */
function helpOf(cmd: Command): string {
  const out: string[] = [];
  const write = (s: string) => {
    out.push(s);
  };
  cmd.configureOutput({ writeOut: write, writeErr: write });
  cmd.outputHelp();
  return out.join("");
}

/** A program whose every command writes its output and errors to `sink` instead of the terminal. */
function quietProgram(sink: { text: string }): Command {
  const program = buildProgram();
  for (const c of [program, ...walk(program).map((n) => n.cmd)])
    c.configureOutput({
      writeOut: (s) => {
        sink.text += s;
      },
      writeErr: (s) => {
        sink.text += s;
      },
    });
  return program;
}

const PROGRAM = buildProgram();
const ALL = [{ path: ["(program)"], cmd: PROGRAM }, ...walk(PROGRAM)];

describe("leasehold --help teaches (issue 18 item 5)", () => {
  it("walks the whole tree: every group and the commands under them", () => {
    const paths = ALL.map((n) => n.path.join(" "));
    for (const p of [
      "serve",
      "resources list",
      "leases revoke",
      "approvals approve",
      "audit query",
      "policy check",
      "keys rotate",
      "agent keygen",
      "cluster adopt",
      "adapters test",
      "doctor",
      "exec",
      "checkout",
      "checkin",
      "completion",
    ])
      expect(paths).toContain(p);
    expect(ALL.length).toBeGreaterThan(35);
  });

  it.each(ALL.map((n) => [n.path.join(" "), n.cmd] as const))(
    "leasehold %s has a one-line description and an example",
    (_path, cmd) => {
      const description = cmd.description();
      expect(description.trim()).not.toBe("");
      expect(description).not.toContain("\n");
      const help = helpOf(cmd);
      const block = help.match(/\nExamples?:\n([\s\S]*)$/)?.[1] ?? "";
      expect(block).toMatch(/\bleasehold /);
    },
  );

  it.each(
    ALL.filter((n) => n !== ALL[0] && n.cmd.commands.length > 0).map(
      (n) => [n.path.join(" "), n.path] as const,
    ),
  )("a mistyped subcommand of leasehold %s gets a did-you-mean", async (_p, path) => {
    const sink = { text: "" };
    const program = quietProgram(sink);
    const group = walk(program).find((n) => n.path.join(" ") === path.join(" "))?.cmd as Command;
    const first = group.commands[0]?.name() as string;
    const typo = `${first.slice(0, 1)}${first.slice(2, 3)}${first.slice(1, 2)}${first.slice(3)}`;
    const err = await program.parseAsync([...path, typo], { from: "user" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CommanderError);
    expect((err as CommanderError).code).toBe("commander.unknownCommand");
    expect(sink.text).toContain(`error: unknown command '${typo}'`);
    expect(sink.text).toContain(`(Did you mean ${first}?)`);
    expect(sink.text).toContain("(add --help for usage and examples)");
  });

  it("a mistyped top-level command and option get one too", async () => {
    const sink = { text: "" };
    await expect(quietProgram(sink).parseAsync(["lease", "list"], { from: "user" })).rejects.toThrow();
    expect(sink.text).toContain("(Did you mean leases?)");
    const opt = { text: "" };
    await expect(
      quietProgram(opt).parseAsync(["leases", "list", "--outptu", "json"], { from: "user" }),
    ).rejects.toThrow();
    expect(opt.text).toContain("(Did you mean --output?)");
  });

  it("every listing command takes --output table|json", () => {
    for (const p of ["leases list", "resources list", "approvals list", "audit query", "adapters list"]) {
      const cmd = ALL.find((n) => n.path.join(" ") === p)?.cmd as Command;
      const output = cmd.options.find((o) => o.long === "--output");
      expect(output?.argChoices, p).toEqual(["table", "json"]);
      expect(output?.defaultValue, p).toBe("table");
    }
  });
});
