import type { Command } from "commander";
import { unknownValueMessage } from "../../util/close-match.js";
import { CliError } from "../cli-error.js";
import { examples } from "../help.js";

/** The shells there is a script for (as completion.ts's COMPLETION_SHELLS, which loads only when asked). */
const SHELLS = ["bash", "zsh", "fish"] as const;

/**
 * `leasehold completion bash|zsh|fish`: prints a completion script generated from the command
 * tree itself (commands, subcommands, long options and their named values), so it cannot fall
 * behind the commands.
 */
export function registerCompletionCommand(program: Command): void {
  program
    .command("completion")
    .description("print a shell completion script (bash, zsh or fish) for leasehold")
    .argument("<shell>", "bash, zsh or fish")
    .addHelpText(
      "after",
      examples(
        "source <(leasehold completion bash)                     # this bash session",
        "leasehold completion bash > ~/.local/share/bash-completion/completions/leasehold",
        'leasehold completion zsh > "${fpath[1]}/_leasehold"       # zsh, then restart it',
        "leasehold completion fish > ~/.config/fish/completions/leasehold.fish",
      ),
    )
    .action(async (shell: string) => {
      const shells: readonly string[] = SHELLS;
      if (!shells.includes(shell)) throw new CliError(unknownValueMessage("<shell>", shell, SHELLS));
      const { completionScript } = await import("../completion.js");
      process.stdout.write(completionScript(shell as (typeof SHELLS)[number], program));
    });
}
