/**
 * Child process for the admin-connection checks: reads `{ adapter, target, account, current,
 * next, admin }` as JSON on stdin, rotates once as the admin and prints "rotated". Then,
 * with `--close`, closes the pooled connections and prints "closed" (the close must finish
 * before the process may exit); without it, returns: the process must then exit on its own,
 * a pooled admin connection and its idle timer must not keep it alive.
 */
import { closeAdminSessions } from "../../adapters/admin-sessions.js";
import { builtinAdapters } from "../../adapters/registry.js";

let input = "";
for await (const chunk of process.stdin) input += String(chunk);
const req = JSON.parse(input) as {
  adapter: string;
  target: unknown;
  account: string;
  current: string;
  next: string;
  admin: { username: string; password: string };
};
const adapter = builtinAdapters.get(req.adapter);
if (adapter === undefined) throw new Error(`no adapter ${req.adapter}`);
const silent = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
await adapter.rotate(
  adapter.config.parse(req.target),
  { account: req.account, current: req.current, next: req.next },
  { admin: req.admin, log: silent, timeoutMs: 10_000 },
);
process.stdout.write("rotated\n");
if (process.argv.includes("--close")) {
  await closeAdminSessions();
  process.stdout.write("closed\n");
}
