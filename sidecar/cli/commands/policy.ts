import type { Command } from "commander";
import { CliError } from "../cli-error.js";
import type { CliContext } from "../context.js";
import { examples } from "../help.js";

function addValidate(policy: Command, cli: CliContext): void {
  policy
    .command("validate <file>")
    .description("check a policy file against leasehold's Cedar schema")
    .addHelpText("after", examples("leasehold policy validate ./policy.cedar"))
    .action(async (file: string) => {
      const { validatePolicyFile } = await import("../../policy/index.js");
      const res = await validatePolicyFile(file);
      cli.out(res, () =>
        res.ok
          ? [
              `ok: ${res.policies.length} policies (${res.policies.join(", ")})`,
              ...res.warnings.map((w) => `warning: ${w}`),
            ].join("\n")
          : res.errors.map((e) => `error: ${e}`).join("\n"),
      );
      if (!res.ok) process.exitCode = 1;
    });
}

interface CheckOpts {
  principal: string;
  action: string;
  resource: string;
  context?: string;
  file?: string;
  groups?: string;
}

function parseContext(json: string | undefined): unknown {
  if (json === undefined) return undefined;
  try {
    return JSON.parse(json);
  } catch {
    throw new CliError("--context: not valid JSON");
  }
}

function addCheck(policy: Command, cli: CliContext): void {
  policy
    .command("check")
    .description("decide one request offline and print the deciding policies")
    .requiredOption("--principal <id>", "the agent's SPIFFE ID")
    .requiredOption(
      "--action <action>",
      "checkout, reveal, renew, tool_call, revoke, approve, register or statement",
    )
    .requiredOption("--resource <name>", "the resource name")
    .option("--context <json>", 'context fields as JSON, e.g. \'{"intent":"read","ttl":300}\'')
    .option("--file <file>", "policy file (default: the config's policy.file)")
    .option("--groups <list>", "comma-separated ResourceGroup ids of the resource")
    .addHelpText(
      "after",
      examples(
        "leasehold policy check --principal spiffe://example.org/agent/reporter --action checkout \\",
        '  --resource orders-db --context \'{"intent":"read","ttl":300}\'   # exit 2 when denied',
      ),
    )
    .action(async (opts: CheckOpts) => {
      const context = parseContext(opts.context);
      const file = opts.file ?? (await cli.config()).policy.file ?? undefined;
      const { checkPolicyOffline } = await import("../../policy/index.js");
      const d = await checkPolicyOffline(file, {
        principal: opts.principal,
        action: opts.action,
        resource: opts.resource,
        context,
        resourceGroups: opts.groups ? opts.groups.split(",").filter(Boolean) : [],
      }).catch((err: unknown) => {
        throw new CliError((err as Error).message);
      });
      cli.out(d, () =>
        [
          `${d.decision.toUpperCase()}${d.policies.length ? ` by ${d.policies.join(", ")}` : ""}`,
          ...d.reasons.map((r) => `  reason: ${r}`),
          ...d.errors.map((e) => `  error: ${e}`),
        ].join("\n"),
      );
      if (d.decision === "deny") process.exitCode = 2;
    });
}

/** `leasehold policy validate|check`: Cedar policies tested offline, without a running sidecar. */
export function registerPolicyCommands(program: Command, cli: CliContext): void {
  const policy = program
    .command("policy")
    .description("test Cedar policies offline")
    .addHelpText(
      "after",
      examples(
        "leasehold policy validate ./policy.cedar",
        "leasehold policy check --principal spiffe://example.org/agent/reporter --action checkout --resource orders-db",
      ),
    );
  addValidate(policy, cli);
  addCheck(policy, cli);
}
