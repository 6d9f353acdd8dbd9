#!/usr/bin/env node
// `npm test`: makes sure the services the tests need are up (starting or installing what it can),
// then runs every test. A service it cannot provide is named with the command that installs it.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { connect } from "node:net";

const log = (msg) => process.stdout.write(`[npm test] ${msg}\n`);
const isRoot = process.getuid?.() === 0;

function reachable(port, host = "127.0.0.1", timeoutMs = 1000) {
  return new Promise((resolve) => {
    const s = connect({ port, host });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

function have(cmd) {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

let aptUpdated = false;
function aptInstall(pkgs) {
  if (!isRoot || !have("apt-get")) return false;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  if (!aptUpdated) {
    spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
    aptUpdated = true;
  }
  return spawnSync("apt-get", ["install", "-y", "-qq", ...pkgs], { stdio: "inherit", env }).status === 0;
}

async function waitFor(port, seconds) {
  for (let i = 0; i < seconds * 5; i++) {
    if (await reachable(port)) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

const problems = [];

// Redis 127.0.0.1:6379
if (!(await reachable(6379))) {
  if (!have("redis-server")) aptInstall(["redis-server"]);
  if (have("redis-server")) {
    log("starting redis-server on 127.0.0.1:6379");
    spawnSync(
      "redis-server",
      ["--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"],
      {
        stdio: "inherit",
      },
    );
  }
  if (!(await waitFor(6379, 10)))
    problems.push("Redis is not reachable on 127.0.0.1:6379 (apt-get install redis-server)");
}
if (!have("redis-server")) problems.push("redis-server is not installed (apt-get install redis-server)");

// PostgreSQL binaries: tests start their own scram-sha-256 cluster with initdb.
const pgBin = () =>
  (existsSync("/usr/lib/postgresql") ? readdirSync("/usr/lib/postgresql") : []).some((v) =>
    existsSync(`/usr/lib/postgresql/${v}/bin/initdb`),
  );
if (!pgBin()) aptInstall(["postgresql"]);
if (!pgBin()) problems.push("PostgreSQL server binaries (initdb) are missing (apt-get install postgresql)");

// MariaDB 127.0.0.1:3306 (mysql adapter tests)
if (!(await reachable(3306))) {
  if (!existsSync("/usr/sbin/mariadbd")) aptInstall(["mariadb-server"]);
  if (existsSync("/usr/sbin/mariadbd") && have("start-stop-daemon")) {
    log("starting mariadbd");
    spawnSync("start-stop-daemon", ["--start", "--oknodo", "--background", "--exec", "/usr/sbin/mariadbd"], {
      stdio: "inherit",
    });
  }
  if (!(await waitFor(3306, 30)))
    problems.push("MariaDB is not reachable on 127.0.0.1:3306 (apt-get install mariadb-server)");
}

// OpenLDAP's slapd (ldap adapter tests start private servers)
if (!existsSync("/usr/sbin/slapd")) aptInstall(["slapd", "ldap-utils"]);
if (!existsSync("/usr/sbin/slapd"))
  problems.push("OpenLDAP slapd is missing (apt-get install slapd ldap-utils)");

// Chromium (the dashboard's browser tests) and tmux ('leases watch' under a pseudo-terminal)
if (!existsSync("/usr/bin/chromium")) aptInstall(["chromium"]);
if (!existsSync("/usr/bin/chromium")) problems.push("Chromium is missing (apt-get install chromium)");
if (!have("tmux")) aptInstall(["tmux"]);
if (!have("tmux")) problems.push("tmux is missing (apt-get install tmux)");
// zsh and fish load the completion scripts (their tests skip without them); useradd and runuser
// make the OS users of the caller-binding tests (issue 22).
for (const shell of ["zsh", "fish"]) if (!have(shell)) aptInstall([shell]);
if (!have("useradd")) aptInstall(["passwd"]);

if (problems.length) {
  for (const p of problems) process.stderr.write(`[npm test] missing: ${p}\n`);
  process.stderr.write("[npm test] the tests that need these will fail\n");
}

log("typecheck and lint");
const tc = spawnSync("npx", ["tsc", "-p", "tsconfig.json", "--noEmit"], { stdio: "inherit" });
const lint = spawnSync("npx", ["biome", "check", "."], { stdio: "inherit" });
log("running vitest");
const r = spawnSync("npx", ["vitest", "run", ...process.argv.slice(2)], { stdio: "inherit" });
if (tc.status !== 0 || lint.status !== 0) {
  process.stderr.write("[npm test] typecheck or lint failed\n");
  process.exit(1);
}
process.exit(r.status ?? 1);
