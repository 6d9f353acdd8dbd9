import { type Command, Option } from "commander";
import { type BundleAttributeValue, generateAgentKey, mintIdentityAssertion } from "../../identity/index.js";
import { AGENT_ATTRIBUTES } from "../../policy/index.js";
import { CliError } from "../cli-error.js";
import type { CliContext } from "../context.js";

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/**
 * `--attribute name=value` options as the bundle's `attributes`, typed by the policy schema's
 * Agent attributes: a `Set<String>` collects every value given for its name, a `Bool` takes
 * `true` or `false`. A name the schema does not declare is refused: policy would never see it.
 */
export function keygenAttributes(options: readonly string[]): Record<string, BundleAttributeValue> {
  const out: Record<string, BundleAttributeValue> = {};
  for (const option of options) {
    const eq = option.indexOf("=");
    const name = eq > 0 ? option.slice(0, eq) : "";
    const value = option.slice(eq + 1);
    const type = Object.hasOwn(AGENT_ATTRIBUTES, name) ? AGENT_ATTRIBUTES[name] : undefined;
    if (eq <= 0) throw new CliError(`--attribute ${option}: expected name=value`);
    if (type === undefined || name === "trust_kind" || name === "iss") {
      const known = Object.keys(AGENT_ATTRIBUTES).filter((n) => n !== "trust_kind" && n !== "iss");
      throw new CliError(`--attribute ${name}: not an agent attribute policy sees (${known.join(", ")})`);
    }
    if (type === "Set<String>") {
      const prev = out[name];
      out[name] = [...(Array.isArray(prev) ? prev : []), value];
    } else if (name in out) {
      throw new CliError(`--attribute ${name}: given twice`);
    } else if (type === "Bool") {
      if (value !== "true" && value !== "false") throw new CliError(`--attribute ${name}: true or false`);
      out[name] = value === "true";
    } else if (type === "Long") {
      if (!/^-?\d{1,15}$/.test(value)) throw new CliError(`--attribute ${name}: an integer`);
      out[name] = Number(value);
    } else {
      out[name] = value;
    }
  }
  return out;
}

function addKeygen(agent: Command, cli: CliContext): void {
  agent
    .command("keygen")
    .description("create an Ed25519 key for an agent and add its public key to a trust bundle")
    .requiredOption("--id <spiffe-id>", "the agent's SPIFFE ID")
    .requiredOption("--out <dir>", "folder for the key (and agents.jwks.json)")
    .option("--bundle <file>", "trust bundle to add the public key to")
    .option(
      "--attribute <name=value>",
      "a policy attribute of the agent, kept beside its key in the bundle (repeat it; repeat a set's name for each member)",
      collect,
      [],
    )
    .action(async (opts: { id: string; out: string; bundle?: string; attribute: string[] }) => {
      const attributes = keygenAttributes(opts.attribute);
      const res = await generateAgentKey({
        id: opts.id,
        outDir: opts.out,
        ...(opts.bundle ? { bundle: opts.bundle } : {}),
        ...(Object.keys(attributes).length > 0 ? { attributes } : {}),
      });
      cli.out(res, () => `key ${res.keyFile} (kid ${res.kid}); public key added to ${res.bundleFile}`);
    });
}

function addAssert(agent: Command, cli: CliContext): void {
  agent
    .command("assert")
    .description("print an identity JWT for the agent whose key file is given")
    .requiredOption("--key <file>", "the agent's private key file")
    .addOption(new Option("--ttl <seconds>", "lifetime").default("60"))
    .option("--aud <audience>", "audience (default: the config's identity.audience, else leasehold)")
    .action(async (opts: { key: string; ttl: string; aud?: string }) => {
      const ttl = Number(opts.ttl);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 86400)
        throw new CliError("--ttl: a whole number of seconds, 1-86400");
      let audience = opts.aud;
      if (!audience) {
        try {
          audience = cli.config().identity.audience;
        } catch {
          audience = "leasehold";
        }
      }
      const jwt = await mintIdentityAssertion({ keyFile: opts.key, audience, ttlSeconds: ttl });
      process.stdout.write(`${jwt}\n`);
    });
}

/** `leasehold agent keygen|assert`: agent identities, without a running sidecar. */
export function registerAgentCommands(program: Command, cli: CliContext): void {
  const agent = program.command("agent").description("agent identities");
  addKeygen(agent, cli);
  addAssert(agent, cli);
}
