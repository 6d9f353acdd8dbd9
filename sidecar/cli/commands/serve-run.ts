// `leasehold serve`'s implementation, loaded only when serve runs (serve.ts registers it).
import { createServer } from "node:net";
import { type Config, crashPointFromEnv } from "../../config.js";
import { createLogger, type Logger } from "../../logger.js";
import { loadPolicy, type PolicyEngine } from "../../policy/index.js";
import type { CrashPoint } from "../../rotation/index.js";
import { listenOnSocket, prepareSocketPath } from "../../unix-socket.js";
import { escapeText } from "../../util/text.js";
import { createSidecar, type Sidecar } from "../../wire.js";
import {
  classifyStartupError,
  STARTUP_EXIT_CODES,
  StartupError,
  type StartupFailure,
} from "../../wire/startup.js";
import type { CliContext } from "../context.js";

const LISTEN_CAUSES: Record<string, string> = {
  EADDRINUSE: "address already in use (EADDRINUSE)",
  EACCES: "permission denied (EACCES)",
  EADDRNOTAVAIL: "address not available on this host (EADDRNOTAVAIL)",
  ENOTFOUND: "host not found (ENOTFOUND)",
};

/** `cannot listen on 127.0.0.1:7733: address already in use (EADDRINUSE)`. */
function listenError(where: string, err: unknown): StartupError {
  const e = err as { code?: string; message?: string };
  const cause = (e.code && LISTEN_CAUSES[e.code]) ?? e.message ?? String(err);
  return new StartupError("listen", `cannot listen on ${where}: ${cause}`);
}

function listenAddress(cfg: Config): string {
  if (cfg.listen.socket) return cfg.listen.socket;
  return cfg.listen.host.includes(":")
    ? `[${cfg.listen.host}]:${cfg.listen.port}`
    : `${cfg.listen.host}:${cfg.listen.port}`;
}

/** Binds the TCP address once and lets it go: a busy or forbidden port ends the start before anything opens. */
function probeListen(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
  });
}

/**
 * Checks what can be checked before anything opens: the policy file and the listen address.
 * Returns the policy engine it loaded, which the sidecar then uses (Cedar compiles once).
 */
async function preflight(cfg: Config): Promise<PolicyEngine> {
  // The same load the sidecar does: an absent file denies everything, an invalid one is refused.
  const policy = await loadPolicy(cfg.policy.file ? { file: cfg.policy.file } : {});
  const where = listenAddress(cfg);
  try {
    if (cfg.listen.socket) await prepareSocketPath(cfg.listen.socket);
    else await probeListen(cfg.listen.host, cfg.listen.port);
  } catch (err) {
    // A socket path leasehold refuses (its folder missing or writable by others, not a socket) is
    // a config error; one that another process listens on is a listen failure.
    if (cfg.listen.socket) {
      const message = (err as Error).message;
      throw new StartupError(/another process is listening/.test(message) ? "listen" : "config", message);
    }
    throw listenError(where, err);
  }
  return policy;
}

/**
 * Ends the process with one line on stderr and the exit status of its kind of failure. Everything
 * was closed before, so the process ends by itself; should anything still hold it open, it is
 * ended anyway a moment later, and the log says so (a bug: something was not closed).
 */
function giveUp(kind: StartupFailure, message: string, log: Logger | undefined): void {
  process.stderr.write(`leasehold: ${escapeText(message)}\n`);
  process.exitCode = STARTUP_EXIT_CODES[kind];
  setTimeout(() => {
    log?.warn(
      { resources: process.getActiveResourcesInfo() },
      "something was still open after the start-up failure; exiting anyway",
    );
    process.exit(STARTUP_EXIT_CODES[kind]);
  }, 3000).unref();
}

/** Creates the sidecar, listens, and installs the signal handlers. */
async function start(
  cfg: Config,
  log: Logger,
  waitForDepsSeconds: number,
  policy: PolicyEngine,
): Promise<Sidecar> {
  const crashAt = crashPointFromEnv();
  const sidecar = await createSidecar({
    config: cfg,
    log,
    policy,
    waitForDepsSeconds,
    crashHook: crashAt
      ? (point: CrashPoint) => {
          if (point === crashAt) process.kill(process.pid, "SIGKILL");
        }
      : undefined,
  });
  try {
    if (cfg.listen.socket) await listenOnSocket((path) => sidecar.app.listen({ path }), cfg.listen.socket);
    else await sidecar.app.listen({ host: cfg.listen.host, port: cfg.listen.port });
  } catch (err) {
    await sidecar.close().catch(() => undefined);
    throw listenError(listenAddress(cfg), err);
  }
  log.info(
    cfg.listen.socket
      ? { sidecar: sidecar.id, socket: cfg.listen.socket }
      : { sidecar: sidecar.id, host: cfg.listen.host, port: cfg.listen.port },
    "leasehold listening",
  );
  const stop = async () => {
    await sidecar.close();
    process.exit(0);
  };
  process.on("SIGHUP", () => {
    void sidecar
      .reloadPolicy()
      .then((r) =>
        r.ok
          ? log.info({}, "policy reloaded")
          : log.error({ error: r.error }, "policy reload failed; the old policy stays"),
      );
  });
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  return sidecar;
}

/**
 * `leasehold serve`'s work (serve.ts registers the command): loads the whole config, checks what
 * it can, starts the sidecar. A start that cannot finish ends with one stderr line and the exit
 * status of its kind of failure.
 */
export async function runServe(cli: CliContext, waitForDepsSeconds: number): Promise<void> {
  let log: Logger | undefined;
  try {
    const cfg = await cli.config();
    log = createLogger(cfg.log.level);
    const policy = await preflight(cfg);
    // start() closes whatever it opened before it throws.
    await start(cfg, log, waitForDepsSeconds, policy);
  } catch (err) {
    const { kind, message } = classifyStartupError(err);
    log?.error({ exitCode: STARTUP_EXIT_CODES[kind], reason: message }, "start-up failed");
    giveUp(kind, message, log);
  }
}
