import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * e2e tests drive the built CLI, so build once before them (tsc, then the bundle). Type errors are reported by
 * `npm test`'s typecheck step; tsc still emits, so a type error elsewhere does not hide
 * what the e2e tests would show.
 */
export function setup(): void {
  try {
    execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
  } catch (err) {
    if (!existsSync("dist/sidecar/cli/main.js")) throw err;
    process.stderr.write("e2e global setup: tsc reported errors (see above); running on what it emitted\n");
  }
  // The bin the tests spawn, dist/cli/leasehold.mjs: the CLI bundled from the sources.
  execFileSync(process.execPath, ["scripts/bundle.mjs"], { stdio: "inherit" });
}
