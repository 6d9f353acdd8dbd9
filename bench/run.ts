/** `npm run bench [-- --quick]`: every benchmark in turn, each printing the product's figure, the floor's and the ratio. */
import { spawnSync } from "node:child_process";

const args = process.argv.slice(2);
const benches = [
  "cli-start.ts",
  "policy.ts",
  "checkout.ts",
  "leases.ts",
  "token-verify.ts",
  "memory.ts",
  "rotation.ts",
  "proxy-pg.ts",
  "proxy-redis.ts",
  "proxy-mysql.ts",
  "statement-policy.ts",
  "attest.ts",
  "mcp.ts",
];
let failed = 0;
for (const b of benches) {
  process.stdout.write(`\n=== bench/${b} ${args.join(" ")}\n`);
  // Node with tsx's loader directly: an npx lookup per bench costs a second or two.
  const r = spawnSync(process.execPath, ["--import", "tsx", `bench/${b}`, ...args], { stdio: "inherit" });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
