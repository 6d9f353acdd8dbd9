import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { withExamples } from "../help.js";

/** `leasehold keys rotate`: a new lease-token signing key; the old ones keep verifying. */
export function registerKeyCommands(program: Command, cli: CliContext): void {
  const keys = program.command("keys").description("lease-token signing keys");
  withExamples(keys, "leasehold keys rotate --config /etc/leasehold/leasehold.yaml");
  const rotate = keys
    .command("rotate")
    .description("add a new signing key; old keys keep verifying until their tokens expire");
  withExamples(
    rotate,
    "leasehold keys rotate",
    'leasehold --json keys rotate --config /etc/leasehold/leasehold.yaml   # prints {"kid": …}',
  ).action(async () => {
    const { loadLeaseTokenKeys } = await import("../../identity/index.js");
    const k = await loadLeaseTokenKeys({ file: (await cli.config()).tokens.signingKey });
    const kid = await k.rotate();
    cli.out({ kid }, () => `new signing key ${kid}; running sidecars pick it up on their next token check`);
  });
}
