import { execFileSync } from "node:child_process";

/** e2e tests drive the built CLI, so build once before them. */
export function setup(): void {
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
}
