import { constants } from "node:fs";
import { access, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Config } from "../config.js";
import { type DoctorCheck, fail, ok, warn } from "./types.js";

/** The `engines.node` of leasehold's package.json, found by walking up from this module. */
async function enginesNode(): Promise<string | undefined> {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as {
        name?: string;
        engines?: { node?: string };
      };
      if (pkg.name === "leasehold") return pkg.engines?.node;
    } catch {
      // not here: one folder up
    }
    dir = dirname(dir);
  }
  return undefined;
}

function versionParts(v: string): number[] {
  return v
    .replace(/^v/, "")
    .split(".")
    .map((n) => Number.parseInt(n, 10) || 0);
}

/** True when `version` is at least `floor` (both `major.minor.patch`, missing parts 0). */
function atLeast(version: string, floor: string): boolean {
  const a = versionParts(version);
  const b = versionParts(floor);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

/** This Node against package.json's `engines.node` (a `>=X.Y` floor). */
export async function checkNode(version = process.version): Promise<DoctorCheck> {
  const what = "node version";
  const range = await enginesNode();
  const floor = range && /^>=\s*(\d+(?:\.\d+){0,2})$/.exec(range.trim())?.[1];
  if (!floor)
    return warn(
      what,
      `${version}; cannot read a >= floor from engines.node (${range ?? "absent"})`,
      "compare with package.json's engines.node by hand",
    );
  if (atLeast(version, floor)) return ok(what, `${version} satisfies ${range}`);
  return fail(
    what,
    `${version} is older than ${range}`,
    `install Node ${floor} or newer (e.g. \`nvm install ${floor.split(".")[0]}\`)`,
  );
}

/** A secret file: exists, readable by its owner only, owned by the user running doctor. */
async function checkSecretFile(what: string, file: string, optional: boolean): Promise<DoctorCheck> {
  const check = `${what} ${file}`;
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    if (code === "ENOENT" && optional)
      return warn(check, "does not exist yet", "`leasehold serve` creates it (0600) at its first start");
    return fail(
      check,
      `cannot be read (${code})`,
      `check the path in the config and that this user may read it`,
    );
  }
  const mode = st.mode & 0o777;
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    return fail(
      check,
      `owned by uid ${st.uid}, not by this user (uid ${uid})`,
      `chown $(id -un) ${file}, or run doctor as the user that runs the sidecar`,
    );
  }
  if ((mode & 0o077) !== 0) {
    return fail(check, `mode ${mode.toString(8).padStart(4, "0")} lets others read it`, `chmod 600 ${file}`);
  }
  return ok(check, `mode ${mode.toString(8).padStart(4, "0")}, owned by this user`);
}

/** The folder of the audit file exists and this user may write it (the file too, if it exists). */
async function checkAuditFolder(file: string): Promise<DoctorCheck> {
  const folder = dirname(file);
  const check = `audit folder ${folder}`;
  try {
    await access(folder, constants.W_OK | constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    const fix = code === "ENOENT" ? `mkdir -p ${folder}` : `give this user write access to ${folder}`;
    return fail(check, `not writable (${code})`, fix);
  }
  try {
    await access(file, constants.W_OK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      return fail(check, `${file} exists but is not writable`, `give this user write access to ${file}`);
    }
  }
  return ok(check, "writable");
}

/** The policy file validates against the schema (as `leasehold policy validate` does). */
async function checkPolicyFile(file: string | null): Promise<DoctorCheck> {
  if (file === null)
    return warn(
      "policy",
      "policy.file is null: every checkout is denied",
      "write a Cedar policy and set policy.file",
    );
  const { validatePolicyFile } = await import("../policy/index.js");
  const v = await validatePolicyFile(file);
  const check = `policy ${file}`;
  if (!v.ok)
    return fail(
      check,
      v.errors[0] ?? "invalid",
      `fix it; \`leasehold policy validate ${file}\` lists every error`,
    );
  if (v.policies.length === 0)
    return warn(check, "valid, but holds no policy: every checkout is denied", "add a permit rule");
  return ok(check, `valid (${v.policies.length} polic${v.policies.length === 1 ? "y" : "ies"})`);
}

/** File permissions (signing key, admin token, audit HMAC key), the audit folder and the policy file. */
export async function checkFiles(config: Config): Promise<DoctorCheck[]> {
  const out = [
    await checkSecretFile("signing key", config.tokens.signingKey, true),
    await checkSecretFile("admin token", config.admin.tokenFile, true),
  ];
  if (config.audit.hmacKeyFile)
    out.push(await checkSecretFile("audit HMAC key", config.audit.hmacKeyFile, false));
  out.push(await checkAuditFolder(config.audit.file));
  out.push(await checkPolicyFile(config.policy.file));
  return out;
}
