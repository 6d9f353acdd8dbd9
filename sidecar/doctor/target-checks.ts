import type { Adapter, AdapterContext, Credential } from "../../adapters/adapter.js";
import { AdapterError } from "../../adapters/adapter.js";
import type { Config } from "../config.js";
import type { Logger } from "../logger.js";
import type { RedisClient } from "../redis.js";
import { ResourceCatalog } from "../resources/catalog.js";
import type { AccountRecord, StoredRegistration } from "../resources/types.js";
import { vaultPaths } from "../resources/vault-paths.js";
import type { SecretStore } from "../secrets/index.js";
import { logText } from "../util/dependency-error.js";
import { type DoctorCheck, fail, ok, warn } from "./types.js";

/** Vault's cluster id against this Redis keyspace's, read only (doctor never writes either). */
export async function checkCluster(
  config: Config,
  secrets: SecretStore,
  redis: RedisClient,
): Promise<DoctorCheck> {
  const { CLUSTER_VAULT_PATH, redisKeyspaceName, vaultPrefixName } = await import("../cluster/index.js");
  const vault = vaultPrefixName(config.vault);
  const keyspace = redisKeyspaceName(config.redis);
  const check = "cluster identity";
  try {
    const entry = await secrets.read<{ id?: string }>(CLUSTER_VAULT_PATH);
    const vaultId = entry?.data.id ?? null;
    const redisId = await redis.get(`${config.redis.prefix}cluster:id`);
    if (vaultId === null && redisId === null)
      return ok(check, "new cluster: the first `leasehold serve` writes its id");
    if (vaultId !== null && vaultId === redisId)
      return ok(check, `${vaultId}: ${vault} and ${keyspace} agree`);
    if (vaultId !== null && redisId === null) {
      return fail(
        check,
        `${keyspace} has no cluster id, but ${vault} belongs to cluster ${vaultId}`,
        "check redis.url (database) and redis.prefix; if Redis data was really lost, start the sidecar and run `leasehold cluster adopt`",
      );
    }
    return fail(
      check,
      `${keyspace} belongs to cluster ${redisId}, but ${vault} to ${vaultId ?? "no cluster"}`,
      "check redis.url, redis.prefix and vault.prefix: they must name one cluster's Redis and Vault; `leasehold cluster adopt --force` only after a real loss of Redis data",
    );
  } catch (err) {
    return fail(check, `cannot read: ${logText(err)}`, "fix the Redis and Vault checks above first");
  }
}

/** The adapters the sidecar would load: the built-ins, exec with the config's commands, DBAs' modules. */
async function loadAdapters(config: Config): Promise<Map<string, Adapter<unknown>>> {
  const { builtinAdapters } = await import("../../adapters/registry.js");
  const { createExecAdapter } = await import("../../adapters/exec/index.js");
  const { loadAdapterModules } = await import("../adapter-modules.js");
  const adapters = new Map<string, Adapter<unknown>>(builtinAdapters);
  adapters.set("exec", createExecAdapter(config.exec));
  for (const a of await loadAdapterModules(
    config.adapters.map((m) => m.module),
    adapters,
  ))
    adapters.set(a.id, a);
  return adapters;
}

function faultLine(check: string, err: unknown): DoctorCheck {
  if (err instanceof AdapterError) {
    const fix = err.retryable
      ? "make the target reachable from this host (address, port, firewall), then run doctor again"
      : "give the admin the privilege the message names (docs/adapters.md lists each adapter's grants)";
    return fail(check, err.message, fix);
  }
  return fail(check, logText(err), "see the message; the target's own logs say more");
}

/** One registration: the admin logs in, and each account exists and the admin may change its password. */
async function checkTarget(
  reg: StoredRegistration,
  adapter: Adapter<unknown> | undefined,
  catalog: ResourceCatalog,
  secrets: SecretStore,
  ctxOf: (admin: Credential | undefined) => AdapterContext,
): Promise<DoctorCheck[]> {
  const base = `resource ${reg.name}`;
  if (!adapter) {
    return [
      fail(base, `adapter "${reg.adapter}" is not loaded`, `add its module under adapters: in the config`),
    ];
  }
  const conn = adapter.config.safeParse(reg.connection);
  if (!conn.success)
    return [fail(base, "its stored connection no longer validates", `register ${reg.name} again`)];
  const target = conn.data;
  if (reg.rotateWith === "self") return checkSelfAccounts(reg, adapter, target, secrets, ctxOf);
  const admin = await catalog.admin(reg.name);
  const adminCheck = `${base} admin ${reg.admin?.username ?? "?"}`;
  if (!admin)
    return [
      fail(adminCheck, "no admin credential in Vault", `register ${reg.name} again with admin.password`),
    ];
  try {
    const login = adapter.verifyAdmin
      ? await adapter.verifyAdmin(target, admin, ctxOf(undefined))
      : await adapter.verify(target, admin, ctxOf(undefined));
    if (!login.valid) {
      return [
        fail(
          adminCheck,
          `does not log in (${login.reason})`,
          `register ${reg.name} again with the admin's current password (\`leasehold resources register\`)`,
        ),
      ];
    }
  } catch (err) {
    return [faultLine(adminCheck, err)];
  }
  const out: DoctorCheck[] = [ok(adminCheck, "logs in")];
  for (const account of reg.accounts) {
    const check = `${base} account ${account}`;
    if (!adapter.checkAccount) {
      out.push(
        warn(
          check,
          `adapter ${adapter.id} cannot check an account without rotating it`,
          "watch its next rotation (`leasehold resources show`)",
        ),
      );
      continue;
    }
    try {
      const v = await adapter.checkAccount(target, account, ctxOf(admin));
      out.push(
        v.valid
          ? ok(check, "exists; the admin may change its password (dry run)")
          : fail(
              check,
              v.reason,
              `grant the admin ${reg.admin?.username ?? ""} what it needs to change this account's password (docs/adapters.md)`,
            ),
      );
    } catch (err) {
      out.push(faultLine(check, err));
    }
  }
  return out;
}

/** Self mode: each account's password in Vault still logs in (nothing is changed). */
async function checkSelfAccounts(
  reg: StoredRegistration,
  adapter: Adapter<unknown>,
  target: unknown,
  secrets: SecretStore,
  ctxOf: (admin: Credential | undefined) => AdapterContext,
): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = [];
  for (const account of reg.accounts) {
    const check = `resource ${reg.name} account ${account}`;
    const rec = await secrets.read<AccountRecord>(vaultPaths.account(reg.name, account));
    if (!rec?.data.password) {
      out.push(
        warn(
          check,
          `no usable password in Vault (state ${rec?.data.state ?? "absent"})`,
          `\`leasehold resources show ${reg.name}\` says why`,
        ),
      );
      continue;
    }
    try {
      const v = await adapter.verify(
        target,
        { username: account, password: rec.data.password },
        ctxOf(undefined),
      );
      out.push(
        v.valid
          ? ok(check, "its password in Vault logs in (self mode)")
          : fail(
              check,
              `its password in Vault does not log in (${v.reason})`,
              `\`leasehold resources rotate ${reg.name}\`, or register it again with its current password`,
            ),
      );
    } catch (err) {
      out.push(faultLine(check, err));
    }
  }
  return out;
}

/** Every registered resource's target, dry run only: never a rotation, never a write. */
export async function checkTargets(
  config: Config,
  secrets: SecretStore,
  log: Logger,
): Promise<DoctorCheck[]> {
  const catalog = new ResourceCatalog(secrets);
  let regs: StoredRegistration[];
  try {
    regs = await catalog.load();
  } catch (err) {
    return [
      fail("resources", `cannot list the registrations: ${logText(err)}`, "fix the Vault checks above first"),
    ];
  }
  if (regs.length === 0) return [ok("resources", "none registered yet")];
  let adapters: Map<string, Adapter<unknown>>;
  try {
    adapters = await loadAdapters(config);
  } catch (err) {
    return [fail("adapters", logText(err), "fix the adapters: section of the config")];
  }
  const ctxOf = (admin: Credential | undefined): AdapterContext => ({
    admin,
    log: log.child({ module: "adapter" }),
    timeoutMs: config.rotation.adapterTimeout * 1000,
  });
  const out: DoctorCheck[] = [];
  try {
    for (const reg of regs)
      out.push(...(await checkTarget(reg, adapters.get(reg.adapter), catalog, secrets, ctxOf)));
  } finally {
    await Promise.allSettled([...adapters.values()].map((a) => a.close?.()));
  }
  return out;
}
