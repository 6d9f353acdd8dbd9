import { LeaseholdClientError } from "../../client/errors.js";
import { answerError, createTransport } from "../../client/transport.js";
import { CliError } from "../cli-error.js";
import { execAdapter, execEnv } from "./exec-env.js";
import type { ExecOpts } from "./exec-commands.js";
import { checkoutAndLogin, sidecarAddress } from "./exec.js";

/** A value quoted for POSIX shells: inside single quotes, each `'` as `'\''`. */
function shellQuote(v: string): string {
  return `'${v.replaceAll("'", "'\\''")}'`;
}

export async function checkoutAction(
  opts: ExecOpts & { output: "env" | "json" },
  configFlag: string | undefined,
): Promise<void> {
  // The token outlives this process (for `leasehold checkin`): it cannot be bound to a key here.
  const got = await checkoutAndLogin(opts, configFlag, new AbortController().signal, false).catch(
    (err: unknown) => {
      throw err instanceof LeaseholdClientError ? new CliError(`${err.code}: ${err.message}`) : err;
    },
  );
  const { lease, login } = got;
  const kind = execAdapter(opts.adapter, login.connection, [opts.tool]);
  const vars = {
    ...execEnv(kind, login, lease.lease.id, opts.database),
    LEASEHOLD_LEASE_TOKEN: lease.leaseToken(),
  };
  if (opts.output === "json") {
    process.stdout.write(`${JSON.stringify({ lease: lease.lease, env: vars }, null, 2)}\n`);
  } else {
    for (const [k, v] of Object.entries(vars)) process.stdout.write(`export ${k}=${shellQuote(v)}\n`);
  }
}

export async function checkinAction(id: string, configFlag: string | undefined): Promise<void> {
  const token = process.env.LEASEHOLD_LEASE_TOKEN;
  if (!token) throw new CliError("set LEASEHOLD_LEASE_TOKEN (printed by leasehold checkout)");
  const addr = sidecarAddress(configFlag);
  const transport = createTransport(addr.url ? { url: addr.url } : { socketPath: addr.socketPath ?? "" });
  const res = await transport.send({
    method: "DELETE",
    path: `/v1/leases/${encodeURIComponent(id)}`,
    headers: { authorization: `Bearer ${token}` },
    timeoutMs: 30_000,
  });
  if (res.status === 202) {
    process.stderr.write(`leasehold: lease ${id} checked in; its password is rotated next\n`);
    return;
  }
  const err = answerError(res);
  if (err.code === "lease_expired" || err.code === "lease_revoked") {
    process.stderr.write(`leasehold: lease ${id} had ended already (${err.code})\n`);
    return;
  }
  throw new CliError(`${err.code}: ${err.message}`);
}
