import { type Command, Option } from "commander";

/**
 * The text of an "Examples:" block for `addHelpText("after", …)`: one command line per entry (a
 * comment may follow it after `#`).
 */
export function examples(...lines: readonly string[]): string {
  return `\nExamples:\n${lines.map((e) => `  ${e}`).join("\n")}\n`;
}

/**
 * Adds an "Examples:" block to the end of `cmd`'s --help: one command line per entry (a comment
 * may follow it after `#`). Every command has one; test/cli/help-tree.test.ts walks the tree.
 */
export function withExamples(cmd: Command, ...lines: readonly string[]): Command {
  return cmd.addHelpText("after", examples(...lines));
}

/** The formats of a listing command's `--output`. */
export const OUTPUT_FORMATS = ["table", "json"] as const;

/**
 * Adds `--output table|json` to a listing command: json prints the API's answer as one JSON
 * document on stdout (as the global --json does for every command).
 */
export function withOutputOption(cmd: Command): Command {
  return cmd.addOption(
    new Option("-o, --output <format>", "a table, or json: the API's answer as one JSON document on stdout")
      .choices([...OUTPUT_FORMATS])
      .default("table"),
  );
}
