import { type Command, Option } from "commander";
import { CliError } from "../cli-error.js";
import type { CliContext } from "../context.js";
import { examples } from "../help.js";

const collect = (value: string, previous: string[]): string[] => [...previous, value];

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
    .addHelpText(
      "after",
      examples(
        "leasehold agent keygen --id spiffe://example.org/agent/reporter --out ./trust",
        "leasehold agent keygen --id spiffe://example.org/agent/dba --out ./trust --attribute teams=dba --attribute teams=ops",
      ),
    )
    .action(async (opts: { id: string; out: string; bundle?: string; attribute: string[] }) => {
      const { keygenAttributes } = await import("./agent-attributes.js");
      const { generateAgentKey } = await import("../../identity/index.js");
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
    .addHelpText(
      "after",
      examples(
        "leasehold agent assert --key ./trust/reporter.key.jwk",
        'curl -H "authorization: Bearer $(leasehold agent assert --key ./trust/reporter.key.jwk)" …',
      ),
    )
    .action(async (opts: { key: string; ttl: string; aud?: string }) => {
      const ttl = Number(opts.ttl);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 86400)
        throw new CliError("--ttl: a whole number of seconds, 1-86400");
      let audience = opts.aud;
      if (!audience) {
        try {
          audience = (await cli.clientSettings()).audience;
        } catch {
          audience = "leasehold";
        }
      }
      // This one file of identity/, not its index: a shell agent runs this before each request
      // (bench/cli-start.ts).
      const { mintIdentityAssertion } = await import("../../identity/identity-assertion.js");
      const jwt = await mintIdentityAssertion({ keyFile: opts.key, audience, ttlSeconds: ttl });
      process.stdout.write(`${jwt}\n`);
    });
}

/** `leasehold agent keygen|assert`: agent identities, without a running sidecar. */
export function registerAgentCommands(program: Command, cli: CliContext): void {
  const agent = program
    .command("agent")
    .description("agent identities: make a key, print an identity JWT")
    .addHelpText(
      "after",
      examples(
        "leasehold agent keygen --id spiffe://example.org/agent/reporter --out ./trust",
        "leasehold agent assert --key ./trust/reporter.key.jwk",
      ),
    );
  addKeygen(agent, cli);
  addAssert(agent, cli);
}
