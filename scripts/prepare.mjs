// `npm ci` / `npm install` in a checkout run this (package.json "prepare"): builds dist/ (tsc, then
// the bundled CLI in dist/cli/) so that `npx leasehold`, `npm link` and `npm install -g .` find
// the CLI. Where there is nothing to build
// (a dependency layer of the Docker image: no sources, or no TypeScript with --omit=dev) it says
// so and does nothing. Type errors do not stop it when tsc still wrote the CLI: `npm run
// typecheck` (and `npm test`) report them.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const say = (msg) => process.stdout.write(`[prepare] ${msg}\n`);
const tsc = "node_modules/typescript/bin/tsc";
if (!existsSync("sidecar/cli/main.ts") || !existsSync(tsc)) {
  say("no sources or no TypeScript here: nothing to build");
  process.exit(0);
}
say("building dist/ (tsc -p tsconfig.build.json)");
const r = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { stdio: "inherit" });
if (r.status !== 0) {
  if (!existsSync("dist/sidecar/cli/main.js")) process.exit(r.status ?? 1);
  say("tsc reported errors (above); dist/ was written anyway");
}
// The bin, dist/cli/leasehold.mjs: the CLI bundled by esbuild (scripts/bundle.mjs).
say("bundling the CLI into dist/cli/ (node scripts/bundle.mjs)");
const b = spawnSync(process.execPath, ["scripts/bundle.mjs"], { stdio: "inherit" });
if (b.status !== 0) process.exit(b.status ?? 1);
