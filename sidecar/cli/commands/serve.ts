import type { Command } from "commander";
import { crashPointFromEnv } from "../../config.js";
import { createLogger } from "../../logger.js";
import type { CrashPoint } from "../../rotation/index.js";
import { listenOnSocket, prepareSocketPath } from "../../unix-socket.js";
import { createSidecar } from "../../wire.js";
import type { CliContext } from "../context.js";

/**
 * `leasehold serve`: wires the real dependencies once and listens (TCP, or the Unix socket
 * when the config names one). SIGHUP reloads the policy; SIGINT and SIGTERM close and exit 0.
 */
export function registerServeCommand(program: Command, cli: CliContext): void {
  program
    .command("serve")
    .description("run the sidecar")
    .action(async () => {
      const cfg = cli.config();
      const log = createLogger(cfg.log.level);
      const crashAt = crashPointFromEnv();
      // Before anything opens connections, so a refused socket ends the process at once.
      if (cfg.listen.socket) await prepareSocketPath(cfg.listen.socket);
      const sidecar = await createSidecar({
        config: cfg,
        log,
        crashHook: crashAt
          ? (point: CrashPoint) => {
              if (point === crashAt) process.kill(process.pid, "SIGKILL");
            }
          : undefined,
      });
      if (cfg.listen.socket) await listenOnSocket((path) => sidecar.app.listen({ path }), cfg.listen.socket);
      else await sidecar.app.listen({ host: cfg.listen.host, port: cfg.listen.port });
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
    });
}
