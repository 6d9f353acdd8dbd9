/**
 * `npm run bench [-- --quick]`: every benchmark in turn, each printing the product's figure, the
 * floor's and the ratio. `npm run bench -- --soak=30m`: only the soak (bench/soak.ts), which no
 * other run includes.
 */
import { spawnSync } from "node:child_process";

const args = process.argv.slice(2);
const benches = [
  "cli-start.ts",
  "serve-start.ts",
  "policy.ts",
  "checkout.ts",
  "leases.ts",
  "token-verify.ts",
  "memory.ts",
  "rotation.ts",
  "audit-record.ts",
  "proxy-pg.ts",
  "proxy-redis.ts",
  "proxy-mysql.ts",
  "proxy-ldap.ts",
  "statement-policy.ts",
  "attest.ts",
  "mcp.ts",
  "multicore.ts",
];
const soak = args.some((a) => a.startsWith("--soak="));
let failed = 0;
for (const b of soak ? ["soak.ts"] : benches) {
  process.stdout.write(`\n=== bench/${b} ${args.join(" ")}\n`);
  // Node with tsx's loader directly: an npx lookup per bench costs a second or two.
  const r = spawnSync(process.execPath, ["--import", "tsx", `bench/${b}`, ...args], { stdio: "inherit" });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
