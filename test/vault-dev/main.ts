import { parseArgs } from "node:util";
import { type VaultDevServer, startVaultDev } from "./server.js";

/**
 * `npm run vault:dev -- --port 8200 --root-token root [--host H] [--persist FILE] [--kv-mount M]`:
 * runs the dev server in the foreground, prints one line once it listens, and exits 0
 * on SIGINT/SIGTERM after closing.
 */
async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8200" },
      "root-token": { type: "string", default: "root" },
      persist: { type: "string" },
      "kv-mount": { type: "string", default: "secret" },
    },
    strict: true,
  });
  const port = Number.parseInt(values.port, 10);
  if (!Number.isInteger(port) || port < 0 || port > 65_535 || String(port) !== values.port.trim()) {
    throw new Error(`--port must be an integer between 0 and 65535, got ${JSON.stringify(values.port)}`);
  }
  const kvMount = values["kv-mount"].replace(/^\/+|\/+$/g, "");
  const server = await startVaultDev({
    host: values.host,
    port,
    rootToken: values["root-token"],
    kvMount,
    ...(values.persist !== undefined ? { persistFile: values.persist } : {}),
  });
  process.stdout.write(
    `vault-dev listening on ${server.address} (KV v2 at ${kvMount}/, root token: ${server.rootToken})\n`,
  );
  const stop = (): void => {
    shutdown(server).then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`vault-dev: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

function shutdown(server: VaultDevServer): Promise<void> {
  return server.close();
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`vault-dev: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
