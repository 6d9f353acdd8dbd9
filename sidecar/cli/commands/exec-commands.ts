import { type Command, Option } from "commander";

/*
 * The registration of `exec`, `checkout` and `checkin`: light (commander only), so every CLI
 * call stays fast; each action loads the SDK and its own module when it runs.
 */

/** The kinds of target `exec` knows the client conventions of. */
export const EXEC_ADAPTERS = ["postgres", "mysql", "redis", "ldap"] as const;

/** The options `exec` and `checkout` share. */
export interface ExecOpts {
  resource: string;
  task: string;
  intent: string;
  tool?: string;
  ttl?: string;
  key?: string;
  wait?: string;
  mode: "auto" | "reveal" | "proxy";
  adapter?: string;
  database?: string;
}

/** Adds the checkout options `exec` and `checkout` share to `cmd`. */
export function addCheckoutOptions(cmd: Command): Command {
  return cmd
    .requiredOption("--resource <name>", "the resource to check out")
    .requiredOption("--task <id>", "the task the checkout is for")
    .requiredOption("--intent <action>", "what the command does (policy decides), e.g. read")
    .option("--tool <name>", "the tool, for policy and audit (e.g. psql)")
    .option("--ttl <seconds>", "lease lifetime asked for")
    .option("--wait <seconds>", "wait this long for a free account")
    .option("--key <file>", "the agent's key file (default: $LEASEHOLD_AGENT_KEY)")
    .addOption(
      new Option("--mode <mode>", "reveal the password, or connect through the resource's listener")
        .choices(["auto", "reveal", "proxy"])
        .default("auto"),
    )
    .addOption(
      new Option("--adapter <kind>", "the target's kind (default: guessed)").choices([...EXEC_ADAPTERS]),
    )
    .option("--database <name>", "PostgreSQL database (PGDATABASE)");
}

/**
 * `leasehold exec --resource R --task ID --intent A -- cmd args…`: checks out with the agent's
 * key, runs the command with the connection in its environment (the target's own variables),
 * renews while it runs, forwards SIGINT/SIGTERM/SIGHUP, checks in when it exits and exits with
 * its status (128+n when killed by signal n). The credential never appears in any argv.
 */
export function registerExecCommand(program: Command): void {
  addCheckoutOptions(
    program
      .command("exec")
      .description("run a command with a leased credential in its environment; check in when it exits"),
  )
    .argument("<command...>", "the command and its arguments, after --")
    .addHelpText(
      "after",
      "\nExample:\n  LEASEHOLD_ADDR=http://127.0.0.1:7733 LEASEHOLD_AGENT_KEY=./agent.key.jwk \\\n" +
        "    leasehold exec --resource orders-db --task TICKET-1 --intent read --tool psql -- psql -c 'select 1'\n",
    )
    .action(async (argv: string[], opts: ExecOpts) => {
      const { execAction } = await import("./exec.js");
      await execAction(opts, argv, program.opts<{ config?: string }>().config);
    });
}

/**
 * `leasehold checkout … --output env|json` and `leasehold checkin ID`: a lease for a shell
 * script, which checks it in itself (no renewal: the lease lasts its TTL at most).
 */
export function registerCheckoutCommands(program: Command): void {
  const configFlag = () => program.opts<{ config?: string }>().config;
  addCheckoutOptions(
    program
      .command("checkout")
      .description("check out a lease for a shell script and print its variables (check it in after)"),
  )
    .addOption(
      new Option("--output <format>", "shell exports or JSON").choices(["env", "json"]).default("env"),
    )
    .addHelpText(
      "after",
      "\nExample:\n" +
        '  eval "$(leasehold checkout --resource orders-db --task T-1 --intent read --tool psql)"\n' +
        "  psql -c 'select 1'; leasehold checkin \"$LEASEHOLD_LEASE_ID\"\n",
    )
    .action(async (opts: ExecOpts & { output: "env" | "json" }) => {
      const { checkoutAction } = await import("./checkout.js");
      await checkoutAction(opts, configFlag());
    });
  program
    .command("checkin")
    .description("check in a lease from leasehold checkout (the token comes from $LEASEHOLD_LEASE_TOKEN)")
    .argument("<lease-id>", "the lease to check in")
    .addHelpText("after", '\nExample:\n  leasehold checkin "$LEASEHOLD_LEASE_ID"\n')
    .action(async (id: string) => {
      const { checkinAction } = await import("./checkout.js");
      await checkinAction(id, configFlag());
    });
}
