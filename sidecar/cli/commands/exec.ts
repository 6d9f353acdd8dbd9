import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import { dirname, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { createClient } from "../../client/client.js";
import { clientOptionsFromEnv } from "../../client/env.js";
import { LeaseholdClientError } from "../../client/errors.js";
import { type Renewal, startRenewal } from "../../client/renewal.js";
import type { ClientOptions, LeaseHandle } from "../../client/types.js";
import { CliError } from "../cli-error.js";
import type { ExecOpts } from "./exec-commands.js";
import { type ExecLogin, execAdapter, execEnv, mysqlUserHome } from "./exec-env.js";

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * Where the sidecar listens: `LEASEHOLD_ADDR` (`LEASEHOLD_URL`) or `LEASEHOLD_SOCKET`, else the
 * `listen` block of the config file (read alone: no other setting is expanded or checked).
 */
export function sidecarAddress(configFlag: string | undefined): Pick<ClientOptions, "url" | "socketPath"> {
  const fromEnv = clientOptionsFromEnv({}, process.env);
  if (fromEnv.url) return { url: fromEnv.url };
  if (fromEnv.socketPath) return { socketPath: fromEnv.socketPath };
  const file = configFlag ?? process.env.LEASEHOLD_CONFIG ?? "leasehold.yaml";
  if (!existsSync(file)) {
    throw new CliError(`set LEASEHOLD_ADDR (or LEASEHOLD_SOCKET), or give --config: ${file} does not exist`);
  }
  const doc = parseYaml(readFileSync(file, "utf8")) as { listen?: Record<string, unknown> } | null;
  const listen = doc?.listen ?? {};
  if (typeof listen.socket === "string" && listen.socket !== "") {
    return { socketPath: resolve(dirname(resolve(file)), listen.socket) };
  }
  let host = typeof listen.host === "string" ? listen.host : "127.0.0.1";
  if (host === "0.0.0.0" || host === "::") host = "127.0.0.1";
  const port = typeof listen.port === "number" ? listen.port : 7733;
  return { url: `http://${host.includes(":") ? `[${host}]` : host}:${port}` };
}

function seconds(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 86400) throw new CliError(`${name}: a whole number of seconds`);
  return n;
}

/**
 * Checks out (waiting for an approval when policy asks, saying so on stderr) and logs in the way
 * the mode says; `dpop` binds the token to this process (only when nothing else uses it).
 */
export async function checkoutAndLogin(
  opts: ExecOpts,
  configFlag: string | undefined,
  signal: AbortSignal,
  dpop = opts.mode === "reveal",
): Promise<{ lease: LeaseHandle; login: ExecLogin; ttl: number | undefined }> {
  const keyFile = opts.key ?? process.env.LEASEHOLD_AGENT_KEY;
  if (!keyFile) throw new CliError("give --key FILE or set LEASEHOLD_AGENT_KEY (the agent's key file)");
  const ttl = seconds("--ttl", opts.ttl);
  const wait = seconds("--wait", opts.wait);
  const client = createClient({ ...sidecarAddress(configFlag), keyFile });
  const lease = await client.checkout(opts.resource, {
    task: { id: opts.task },
    intent: { action: opts.intent, ...(opts.tool ? { tool: opts.tool } : {}) },
    ...(ttl === undefined ? {} : { ttl }),
    ...(wait === undefined ? {} : { wait }),
    // Listeners accept only Bearer tokens; a revealed password needs no token in the child.
    dpop,
    signal,
    onPending: (a) =>
      process.stderr.write(
        `leasehold: checkout of ${opts.resource} waits for approval ${a.id}` +
          ` (an approver runs: leasehold approvals approve ${a.id})\n`,
      ),
  });
  try {
    if (opts.mode === "proxy" || (opts.mode === "auto" && lease.proxy !== undefined)) {
      const p = lease.proxyLogin();
      return { lease, ttl, login: { ...p, connection: {}, proxy: true } };
    }
    const cred = await lease.credential();
    return {
      lease,
      ttl,
      login: { user: cred.username, password: cred.password, connection: cred.connection, proxy: false },
    };
  } catch (err) {
    await lease.checkin().catch(() => undefined);
    throw err;
  }
}

/** Runs the child with `env` added, forwarding signals; resolves with exec's exit status. */
function runChild(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  renewal: Renewal,
): Promise<number> {
  return new Promise((resolveStatus) => {
    const child = spawn(cmd, args, { stdio: "inherit", env: { ...process.env, ...env } });
    const forward = (sig: NodeJS.Signals) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    };
    for (const sig of FORWARDED) process.on(sig, forward);
    const onLeaseOver = () => {
      const why = renewal.signal.reason instanceof Error ? renewal.signal.reason.message : "the lease ended";
      process.stderr.write(`leasehold: ${why}; stopping ${cmd}\n`);
      forward("SIGTERM");
    };
    renewal.signal.addEventListener("abort", onLeaseOver, { once: true });
    const done = (status: number) => {
      for (const sig of FORWARDED) process.off(sig, forward);
      renewal.signal.removeEventListener("abort", onLeaseOver);
      resolveStatus(status);
    };
    child.once("error", (err: NodeJS.ErrnoException) => {
      process.stderr.write(`leasehold: cannot run ${cmd}: ${err.code ?? err.message}\n`);
      done(err.code === "ENOENT" ? 127 : 126);
    });
    child.once("exit", (code, sig) => {
      done(code ?? 128 + (sig ? (constants.signals[sig] ?? 0) : 0));
    });
  });
}

export async function execAction(
  opts: ExecOpts,
  argv: string[],
  configFlag: string | undefined,
): Promise<void> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new CliError("name the command to run after --, e.g. -- psql -c 'select 1'");
  // Until the child runs, a signal gives up the checkout (and an approval wait).
  const abort = new AbortController();
  let caught: NodeJS.Signals | undefined;
  const giveUp = (sig: NodeJS.Signals) => {
    caught = sig;
    abort.abort();
  };
  for (const sig of FORWARDED) process.on(sig, giveUp);
  let got: Awaited<ReturnType<typeof checkoutAndLogin>>;
  try {
    got = await checkoutAndLogin(opts, configFlag, abort.signal);
  } catch (err) {
    if (caught !== undefined) process.exit(128 + (constants.signals[caught] ?? 0));
    throw err instanceof LeaseholdClientError ? new CliError(`${err.code}: ${err.message}`) : err;
  } finally {
    for (const sig of FORWARDED) process.off(sig, giveUp);
  }
  const { lease, login, ttl } = got;
  const renewal = startRenewal(lease, ttl);
  let status: number;
  if (caught !== undefined) {
    status = 128 + (constants.signals[caught] ?? 0);
  } else {
    const kind = execAdapter(opts.adapter, login.connection, [opts.tool, cmd]);
    const env = execEnv(kind, login, lease.lease.id, opts.database);
    const home = kind === "mysql" ? await mysqlUserHome(login.user) : undefined;
    try {
      status = await runChild(cmd, args, { ...env, ...home?.env }, renewal);
    } finally {
      await home?.remove();
    }
  }
  await renewal.stop();
  try {
    await lease.checkin();
  } catch (err) {
    const e = err as Error;
    process.stderr.write(
      `leasehold: check-in of lease ${lease.lease.id} failed (${e.message}); it ends at its expiry\n`,
    );
  }
  process.exit(status);
}
