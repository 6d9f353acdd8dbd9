import { readFile } from "node:fs/promises";
import type { Config } from "../config.js";
import { describeVaultError } from "../secrets/vault-errors.js";
import { withoutUserinfo } from "../util/dependency-error.js";
import { type DoctorCheck, fail, ok, warn } from "./types.js";

/** An answer of Vault's HTTP API. */
interface VaultAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** One call to Vault's HTTP API; throws the fetch error (network) as it is, for describeVaultError. */
async function vaultCall(
  config: Config["vault"],
  token: string | undefined,
  method: string,
  path: string,
  body?: unknown,
): Promise<VaultAnswer> {
  const res = await fetch(`${config.address.replace(/\/+$/, "")}/v1/${path}`, {
    method,
    headers: {
      ...(token ? { "x-vault-token": token } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(config.timeoutMs),
  });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    // not JSON: the status says enough
  }
  return { status: res.status, body: parsed };
}

/** The error shape describeVaultError reads (node-vault's), for an answer that is not a success. */
function asError(answer: VaultAnswer): unknown {
  return { response: { statusCode: answer.status, body: answer.body } };
}

/** What the sidecar's Vault token is, once doctor has it (logged in for approle and jwt). */
export interface VaultSession {
  readonly token: string;
  readonly checks: DoctorCheck[];
}

function where(config: Config["vault"]): string {
  return `vault ${withoutUserinfo(config.address)}`;
}

/** Reachable and unsealed (sys/health). */
async function checkHealth(config: Config["vault"]): Promise<DoctorCheck> {
  const check = where(config);
  try {
    const a = await vaultCall(config, undefined, "GET", "sys/health?standbyok=true&perfstandbyok=true");
    if (a.status === 200 || a.status === 429 || a.status === 473) return ok(check, "reachable, unsealed");
    if (a.status === 503) return fail(check, "sealed", "unseal Vault (`vault operator unseal`)");
    if (a.status === 501) return fail(check, "not initialized", "initialize Vault (`vault operator init`)");
    return fail(check, `health answered HTTP ${a.status}`, "check vault.address and Vault's logs");
  } catch (err) {
    return fail(check, describeVaultError(config.address, err), "start Vault, or correct vault.address");
  }
}

/** The token of `vault.auth`: the configured one, or a login with AppRole or a JWT. */
async function obtainToken(config: Config["vault"]): Promise<{ token?: string; check: DoctorCheck }> {
  const auth = config.auth;
  const check = `${where(config)} login (${auth.method})`;
  if (auth.method === "token") return { token: auth.token, check: ok(check, "token from vault.auth.token") };
  try {
    const body =
      auth.method === "approle"
        ? { role_id: auth.roleId, secret_id: auth.secretId }
        : { role: auth.role, jwt: (await readFile(auth.jwtFile, "utf8")).trim() };
    const a = await vaultCall(config, undefined, "POST", `auth/${auth.mount}/login`, body);
    const token = (a.body.auth as { client_token?: unknown } | undefined)?.client_token;
    if (a.status >= 300 || typeof token !== "string") {
      return {
        check: fail(
          check,
          describeVaultError(config.address, asError(a), `auth/${auth.mount}/login`),
          `check vault.auth (${auth.method === "approle" ? "roleId and secretId" : "role and jwtFile"}) and the auth method's role in Vault`,
        ),
      };
    }
    return { token, check: ok(check, "logged in") };
  } catch (err) {
    return {
      check: fail(
        check,
        describeVaultError(config.address, err),
        "check vault.auth and that Vault is reachable",
      ),
    };
  }
}

/** The token is valid (auth/token/lookup-self): its policies and time left. */
async function checkToken(config: Config["vault"], token: string): Promise<DoctorCheck> {
  const check = `${where(config)} token`;
  try {
    const a = await vaultCall(config, token, "GET", "auth/token/lookup-self");
    if (a.status !== 200) {
      return fail(
        check,
        describeVaultError(config.address, asError(a), "auth/token/lookup-self"),
        "give the sidecar a valid token (vault.auth), with the default policy attached",
      );
    }
    const data = (a.body.data ?? {}) as { policies?: unknown; ttl?: unknown };
    const policies = Array.isArray(data.policies) ? data.policies.join(", ") : "?";
    const ttl = typeof data.ttl === "number" && data.ttl > 0 ? `, expires in ${data.ttl} s` : "";
    return ok(check, `valid (policies: ${policies}${ttl})`);
  } catch (err) {
    return fail(check, describeVaultError(config.address, err), "check that Vault is reachable");
  }
}

/** Logs in as the sidecar would and checks reachability and the token. */
export async function openVault(config: Config["vault"]): Promise<{ token?: string; checks: DoctorCheck[] }> {
  const health = await checkHealth(config);
  if (health.status === "FAIL") return { checks: [health] };
  const { token, check } = await obtainToken(config);
  if (!token) return { checks: [health, check] };
  const tokenCheck = await checkToken(config, token);
  const checks = config.auth.method === "token" ? [health, tokenCheck] : [health, check, tokenCheck];
  return tokenCheck.status === "FAIL" ? { checks } : { token, checks };
}

/** The capabilities deploy/vault-policy.hcl grants, each on a path the sidecar uses. */
export function requiredCapabilities(
  config: Config["vault"],
): ReadonlyArray<{ path: string; need: readonly string[] }> {
  const { mount, prefix } = config;
  return [
    { path: `${mount}/data/${prefix}/resources/doctor-probe/config`, need: ["create", "read", "update"] },
    { path: `${mount}/metadata/${prefix}/resources/`, need: ["list", "delete"] },
  ];
}

/** The token's capabilities on the prefix (sys/capabilities-self) against what the policy must grant. */
export async function checkCapabilities(config: Config["vault"], token: string): Promise<DoctorCheck[]> {
  const wanted = requiredCapabilities(config);
  const check = (p: string) => `${where(config)} capabilities on ${p}`;
  let a: VaultAnswer;
  try {
    a = await vaultCall(config, token, "POST", "sys/capabilities-self", { paths: wanted.map((w) => w.path) });
  } catch (err) {
    return [
      fail(
        check(`${config.mount}/*/${config.prefix}`),
        describeVaultError(config.address, err),
        "check that Vault is reachable",
      ),
    ];
  }
  if (a.status !== 200) {
    return [
      warn(
        check(`${config.mount}/*/${config.prefix}`),
        `cannot check: ${describeVaultError(config.address, asError(a), "sys/capabilities-self")}`,
        "keep Vault's default policy attached to the sidecar's token (it grants sys/capabilities-self)",
      ),
    ];
  }
  const data = (a.body.data ?? a.body) as Record<string, unknown>;
  return wanted.map(({ path, need }) => {
    const glob = path.replace(/\/resources\/.*$/, "/*");
    const have = Array.isArray(data[path]) ? (data[path] as unknown[]).map(String) : [];
    if (have.includes("root"))
      return warn(
        check(glob),
        "a root token: every capability, far more than the sidecar needs",
        "give the sidecar a token of deploy/vault-policy.hcl only (`vault policy write leasehold deploy/vault-policy.hcl`; docs/operations.md)",
      );
    const missing = need.filter((c) => !have.includes(c));
    if (missing.length === 0) return ok(check(glob), `has ${need.join(", ")}`);
    return fail(
      check(glob),
      `missing ${missing.join(", ")} (has ${have.join(", ") || "none"})`,
      `attach a policy granting path "${glob}" { capabilities = [${need.map((c) => `"${c}"`).join(", ")}] } (deploy/vault-policy.hcl; \`vault policy write leasehold deploy/vault-policy.hcl\`)`,
    );
  });
}
