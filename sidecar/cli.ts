#!/usr/bin/env node
import { readFile } from "node:fs/promises";
import { userInfo } from "node:os";
import { Command, CommanderError, Option } from "commander";
import { parse as parseYaml } from "yaml";
import { resolve } from "node:path";
import { builtinAdapters } from "../adapters/registry.js";
import { loadAdapterModules } from "./adapter-modules.js";
import { runConformanceFromFile } from "./adapters-test/index.js";
import { registerAuditCommands } from "./audit/index.js";
import { ApiError, SidecarClient } from "./cli-client.js";
import { type Config, configPathFrom, crashPointFromEnv, loadConfig } from "./config.js";
import { generateAgentKey, loadLeaseTokenKeys, mintIdentityAssertion } from "./identity/index.js";
import { createLogger } from "./logger.js";
import { checkPolicyOffline, validatePolicyFile } from "./policy/index.js";
import type { CrashPoint } from "./rotation/index.js";
import { listenOnSocket, prepareSocketPath } from "./unix-socket.js";
import { watchCommand, watchTargetFromConfig } from "./ops/index.js";
import { createSidecar } from "./wire.js";

interface GlobalOpts {
  config?: string;
  json?: boolean;
  identityKey?: string;
}

/** A user-facing failure: printed as one line, exit 1. */
class CliError extends Error {}

const program = new Command();
program
  .name("leasehold")
  .description(
    "Credential sidecar for AI agents: per-agent identity, short leases, rotation after every use.",
  )
  .option("-c, --config <file>", "config file (default: $LEASEHOLD_CONFIG or ./leasehold.yaml)")
  .option("--json", "machine-readable output")
  .option(
    "--identity-key <file>",
    "act as the operator whose key file this is (policy decides each action) instead of with the admin token",
  )
  .showHelpAfterError()
  .exitOverride();

const globals = (): GlobalOpts => program.opts<GlobalOpts>();
const config = (): Config => loadConfig(configPathFrom(globals().config));
const client = async () => SidecarClient.fromConfig(config(), { identityKey: globals().identityKey });

function out(value: unknown, human: () => string): void {
  process.stdout.write(globals().json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

function table(rows: string[][]): string {
  if (rows.length === 0) return "";
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

async function readRegistration(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    throw new CliError(`cannot read ${file}`);
  }
  try {
    return parseYaml(text);
  } catch (err) {
    throw new CliError(`${file} is not valid YAML or JSON: ${(err as Error).message.split("\n")[0]}`);
  }
}

program
  .command("serve")
  .description("run the sidecar")
  .action(async () => {
    const cfg = config();
    const log = createLogger(cfg.log.level);
    const crashAt = crashPointFromEnv();
    // Before anything opens connections, so a refused socket ends the process at once.
    if (cfg.listen.socket) await prepareSocketPath(cfg.listen.socket);
    const sidecar = await createSidecar({
      config: cfg,
      log,
      crashHook: crashAt
        ? (point: CrashPoint) => {
            if (point === crashAt) process.kill(process.pid, "SIGKILL");
          }
        : undefined,
    });
    if (cfg.listen.socket) await listenOnSocket((path) => sidecar.app.listen({ path }), cfg.listen.socket);
    else await sidecar.app.listen({ host: cfg.listen.host, port: cfg.listen.port });
    log.info(
      cfg.listen.socket
        ? { sidecar: sidecar.id, socket: cfg.listen.socket }
        : { sidecar: sidecar.id, host: cfg.listen.host, port: cfg.listen.port },
      "leasehold listening",
    );
    const stop = async () => {
      await sidecar.close();
      process.exit(0);
    };
    process.on("SIGHUP", () => {
      void sidecar
        .reloadPolicy()
        .then((r) =>
          r.ok
            ? log.info({}, "policy reloaded")
            : log.error({ error: r.error }, "policy reload failed; the old policy stays"),
        );
    });
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });

const resources = program.command("resources").description("register and manage legacy systems");
resources
  .command("register")
  .description("register (or update) a resource from a YAML/JSON file")
  .requiredOption("-f, --file <file>", "registration file")
  .option("--dry-run", "check everything, change nothing")
  .action(async (opts: { file: string; dryRun?: boolean }) => {
    const reg = await readRegistration(opts.file);
    const name = (reg as { name?: unknown } | null)?.name;
    if (typeof name !== "string" || name === "") throw new CliError(`${opts.file}: name is required`);
    const c = await client();
    const res = await c.request<{
      created: boolean;
      dryRun: boolean;
      checks: string[];
      resource: { accounts: Array<{ name: string; state: string }> };
    }>("PUT", `/v1/resources/${encodeURIComponent(name)}${opts.dryRun ? "?dry_run=true" : ""}`, reg);
    out(res, () =>
      [
        opts.dryRun
          ? `dry run: ${name} would be ${res.created ? "registered" : "updated"}`
          : `${name} ${res.created ? "registered" : "updated"}`,
        ...res.checks.map((c) => `  ok  ${c}`),
        ...(opts.dryRun ? [] : res.resource.accounts.map((a) => `  account ${a.name}: ${a.state}`)),
      ].join("\n"),
    );
  });
resources.command("list").action(async () => {
  const res = await (await client()).request<{
    resources: Array<{ name: string; adapter: string; accounts: number }>;
  }>("GET", "/v1/resources");
  out(res, () =>
    res.resources.length === 0
      ? "no resources registered"
      : table([
          ["NAME", "ADAPTER", "ACCOUNTS"],
          ...res.resources.map((r) => [r.name, r.adapter, String(r.accounts)]),
        ]),
  );
});
resources.command("show <name>").action(async (name: string) => {
  const res = await (await client()).request<{
    name: string;
    adapter: string;
    accounts: Array<{
      name: string;
      state: string;
      lease_id?: string;
      last_rotated_at?: string;
      failures?: number;
    }>;
  }>("GET", `/v1/resources/${encodeURIComponent(name)}`);
  out(res, () =>
    [
      `${res.name} (${res.adapter})`,
      table([
        ["ACCOUNT", "STATE", "LEASE", "LAST ROTATED", "FAILURES"],
        ...res.accounts.map((a) => [
          a.name,
          a.state,
          a.lease_id ?? "-",
          a.last_rotated_at ?? "-",
          String(a.failures ?? 0),
        ]),
      ]),
    ].join("\n"),
  );
});
resources.command("verify <name>").action(async (name: string) => {
  const res = await (await client()).request<{
    results: Array<{ account: string; ok: boolean; reason?: string }>;
  }>("POST", `/v1/resources/${encodeURIComponent(name)}/verify`, {});
  out(res, () =>
    res.results
      .map((r) => `${r.ok ? "ok  " : "FAIL"} ${r.account}${r.reason ? `: ${r.reason}` : ""}`)
      .join("\n"),
  );
  if (res.results.some((r) => !r.ok)) process.exitCode = 1;
});
resources.command("rotate <name>").action(async (name: string) => {
  const res = await (await client()).request<{
    results: Array<{ account: string; status: string; error?: string }>;
  }>("POST", `/v1/resources/${encodeURIComponent(name)}/rotate`, {});
  out(res, () =>
    res.results.map((r) => `${r.account}: ${r.status}${r.error ? ` (${r.error})` : ""}`).join("\n"),
  );
  if (res.results.some((r) => r.status === "failed")) process.exitCode = 1;
});
resources
  .command("remove <name>")
  .option("--force", "revoke active leases first")
  .action(async (name: string, opts: { force?: boolean }) => {
    const res = await (await client()).request<unknown>(
      "DELETE",
      `/v1/resources/${encodeURIComponent(name)}${opts.force ? "?force=true" : ""}`,
    );
    out(res, () => `${name} removed`);
  });

const adapters = program.command("adapters").description("legacy-system adapters");
adapters
  .command("list")
  .description("the built-in adapters and those the config loads")
  .action(async () => {
    const all = new Map(builtinAdapters);
    let configured: string[] = [];
    try {
      configured = config().adapters.map((a) => a.module);
    } catch {
      // No config: list the built-in adapters only.
    }
    for (const a of await loadAdapterModules(configured, all)) all.set(a.id, a);
    const rows = [...all.values()].map((a) => ({ id: a.id, description: a.description }));
    out({ adapters: rows }, () =>
      table([["ADAPTER", "DESCRIPTION"], ...rows.map((r) => [r.id, r.description])]),
    );
  });
adapters
  .command("test <module>")
  .description("run the adapter conformance suite against a real target (MODULE: a file, or a built-in id)")
  .requiredOption("--target <file>", "YAML/JSON target: connection, admin, accounts (see docs/adapters.md)")
  .action(async (module: string, opts: { target: string }) => {
    const builtin = builtinAdapters.get(module);
    const adapter = builtin ?? (await loadAdapterModules([resolve(module)], builtinAdapters))[0];
    if (!adapter) throw new CliError(`${module}: no adapter found`);
    const report = await runConformanceFromFile(adapter, opts.target, (r) => {
      if (!globals().json) {
        const detail = "detail" in r && r.detail ? `: ${r.detail}` : "";
        process.stdout.write(
          `${r.outcome === "passed" ? "ok  " : r.outcome === "failed" ? "FAIL" : "skip"} ${r.check}${detail}\n`,
        );
      }
    });
    out(
      {
        passed: report.passed,
        failed: report.failed,
        skipped: report.skipped,
        unrestored: report.unrestored.map((u) => u.account),
      },
      () =>
        `${report.passed.length} passed, ${report.failed.length} failed, ${report.skipped.length} skipped`,
    );
    if (report.unrestored.length > 0 && process.stdout.isTTY) {
      process.stdout.write(
        "accounts whose original password could not be restored (shown once, on this terminal only):\n",
      );
      for (const u of report.unrestored)
        process.stdout.write(`  ${u.account}: ${u.password ?? "(unknown)"}\n`);
    } else if (report.unrestored.length > 0) {
      process.stdout.write(
        `${report.unrestored.length} account(s) could not be restored; run on a terminal to see their passwords\n`,
      );
    }
    if (report.failed.length > 0 || report.unrestored.length > 0) process.exitCode = 1;
  });

const leases = program.command("leases").description("watch and revoke leases");
leases
  .command("list")
  .option("--resource <name>")
  .option("--agent <id>")
  .action(async (opts: { resource?: string; agent?: string }) => {
    const q = new URLSearchParams();
    if (opts.resource) q.set("resource", opts.resource);
    if (opts.agent) q.set("agent", opts.agent);
    const res = await (await client()).request<{
      leases: Array<{
        id: string;
        resource: string;
        account: string;
        agent: string;
        task: { id: string };
        intent: { action: string };
        ttl_seconds: number;
      }>;
    }>("GET", `/v1/leases${q.size ? `?${q}` : ""}`);
    out(res, () =>
      res.leases.length === 0
        ? "no active leases"
        : table([
            ["LEASE", "RESOURCE", "ACCOUNT", "AGENT", "TASK", "INTENT", "TTL"],
            ...res.leases.map((l) => [
              l.id,
              l.resource,
              l.account,
              l.agent,
              l.task.id,
              l.intent.action,
              `${l.ttl_seconds}s`,
            ]),
          ]),
    );
  });
leases
  .command("watch")
  .description("live view of active leases, refreshed from the event stream")
  .option("--threshold <seconds>", "highlight leases expiring within this many seconds", "60")
  .action(async (opts: { threshold: string }) => {
    const threshold = Number(opts.threshold);
    if (!Number.isFinite(threshold) || threshold < 0)
      throw new CliError("--threshold: a number of seconds, 0 or more");
    if (globals().identityKey !== undefined)
      throw new CliError(
        "--identity-key: the live view reads the whole event stream, which needs the admin token",
      );
    const ac = new AbortController();
    process.once("SIGINT", () => ac.abort());
    process.once("SIGTERM", () => ac.abort());
    await watchCommand({
      ...(await watchTargetFromConfig(config())),
      out: process.stdout,
      thresholdSeconds: threshold,
      json: globals().json === true,
      signal: ac.signal,
    });
  });
leases
  .command("revoke [id]")
  .option("--agent <id>", "revoke every lease of this agent")
  .option("--resource <name>", "revoke every lease of this resource")
  .option("--reason <text>")
  .action(async (id: string | undefined, opts: { agent?: string; resource?: string; reason?: string }) => {
    const c = await client();
    if (opts.resource) {
      const res = await c.request<{ leases: Array<{ id: string }> }>(
        "POST",
        `/v1/resources/${encodeURIComponent(opts.resource)}/revoke`,
        opts.reason ? { reason: opts.reason } : {},
      );
      out(res, () => `revoked ${res.leases.length} lease(s) of ${opts.resource}`);
      return;
    }
    if (opts.agent) {
      const res = await c.request<{ leases: Array<{ id: string }> }>("POST", "/v1/agents/revoke", {
        agent: opts.agent,
        ...(opts.reason ? { reason: opts.reason } : {}),
      });
      out(res, () => `revoked ${res.leases.length} lease(s) of ${opts.agent}`);
      return;
    }
    if (!id) throw new CliError("give a lease id, or --agent");
    const res = await c.request<unknown>(
      "POST",
      `/v1/leases/${encodeURIComponent(id)}/revoke`,
      opts.reason ? { reason: opts.reason } : {},
    );
    out(res, () => `${id} revoked`);
  });

const approvals = program.command("approvals").description("human approval of checkouts");
approvals
  .command("list")
  .option("--status <status>", "pending (default), approved, denied, expired or all", "pending")
  .action(async (opts: { status: string }) => {
    const q = opts.status === "all" ? "" : `?status=${encodeURIComponent(opts.status)}`;
    const res = await (await client()).request<{
      approvals: Array<{
        id: string;
        status: string;
        agent: string;
        resource: string;
        task: { id: string };
        intent: { action: string };
        ttl: number;
        expires_at: string;
        approver?: string;
      }>;
    }>("GET", `/v1/approvals${q}`);
    out(res, () =>
      res.approvals.length === 0
        ? `no ${opts.status === "all" ? "" : `${opts.status} `}approvals`
        : table([
            ["APPROVAL", "STATUS", "AGENT", "RESOURCE", "TASK", "INTENT", "TTL", "EXPIRES"],
            ...res.approvals.map((a) => [
              a.id,
              a.status,
              a.agent,
              a.resource,
              a.task.id,
              a.intent.action,
              `${a.ttl}s`,
              a.expires_at,
            ]),
          ]),
    );
  });
for (const verb of ["approve", "deny"] as const) {
  approvals
    .command(`${verb} <id>`)
    .option("--reason <text>")
    .option(
      "--as <name>",
      "with the admin token: the approver's name recorded in the audit trail (default: your login); an --identity-key names itself",
    )
    .action(async (id: string, opts: { reason?: string; as?: string }) => {
      const byIdentity = globals().identityKey !== undefined;
      if (byIdentity && opts.as !== undefined)
        throw new CliError("--as: an --identity-key names its own approver (the key's subject)");
      const res = await (await client()).request<{ approval: { status: string; approver?: string } }>(
        "POST",
        `/v1/approvals/${encodeURIComponent(id)}/${verb}`,
        {
          ...(byIdentity ? {} : { approver: opts.as ?? userInfo().username }),
          ...(opts.reason ? { reason: opts.reason } : {}),
        },
      );
      out(res, () => `${id} ${res.approval.status} by ${res.approval.approver ?? "?"}`);
    });
}

registerAuditCommands(program, { config: () => config().audit });

const policy = program.command("policy").description("test Cedar policies offline");
policy
  .command("validate <file>")
  .description("check a policy file against leasehold's Cedar schema")
  .action(async (file: string) => {
    const res = await validatePolicyFile(file);
    out(res, () =>
      res.ok
        ? [
            `ok: ${res.policies.length} policies (${res.policies.join(", ")})`,
            ...res.warnings.map((w) => `warning: ${w}`),
          ].join("\n")
        : res.errors.map((e) => `error: ${e}`).join("\n"),
    );
    if (!res.ok) process.exitCode = 1;
  });
policy
  .command("check")
  .description("decide one request offline and print the deciding policies")
  .requiredOption("--principal <id>", "the agent's SPIFFE ID")
  .requiredOption("--action <action>", "checkout, reveal, renew, tool_call, revoke, approve or register")
  .requiredOption("--resource <name>", "the resource name")
  .option("--context <json>", 'context fields as JSON, e.g. \'{"intent":"read","ttl":300}\'')
  .option("--file <file>", "policy file (default: the config's policy.file)")
  .option("--groups <list>", "comma-separated ResourceGroup ids of the resource")
  .action(
    async (opts: {
      principal: string;
      action: string;
      resource: string;
      context?: string;
      file?: string;
      groups?: string;
    }) => {
      let context: unknown;
      if (opts.context !== undefined) {
        try {
          context = JSON.parse(opts.context);
        } catch {
          throw new CliError("--context: not valid JSON");
        }
      }
      const file = opts.file ?? config().policy.file ?? undefined;
      const d = await checkPolicyOffline(file, {
        principal: opts.principal,
        action: opts.action,
        resource: opts.resource,
        context,
        resourceGroups: opts.groups ? opts.groups.split(",").filter(Boolean) : [],
      }).catch((err: unknown) => {
        throw new CliError((err as Error).message);
      });
      out(d, () =>
        [
          `${d.decision.toUpperCase()}${d.policies.length ? ` by ${d.policies.join(", ")}` : ""}`,
          ...d.reasons.map((r) => `  reason: ${r}`),
          ...d.errors.map((e) => `  error: ${e}`),
        ].join("\n"),
      );
      if (d.decision === "deny") process.exitCode = 2;
    },
  );

const keys = program.command("keys").description("lease-token signing keys");
keys
  .command("rotate")
  .description("add a new signing key; old keys keep verifying until their tokens expire")
  .action(async () => {
    const k = await loadLeaseTokenKeys({ file: config().tokens.signingKey });
    const kid = await k.rotate();
    out({ kid }, () => `new signing key ${kid}; running sidecars pick it up on their next token check`);
  });

const agent = program.command("agent").description("agent identities");
agent
  .command("keygen")
  .description("create an Ed25519 key for an agent and add its public key to a trust bundle")
  .requiredOption("--id <spiffe-id>", "the agent's SPIFFE ID")
  .requiredOption("--out <dir>", "folder for the key (and agents.jwks.json)")
  .option("--bundle <file>", "trust bundle to add the public key to")
  .action(async (opts: { id: string; out: string; bundle?: string }) => {
    const res = await generateAgentKey({
      id: opts.id,
      outDir: opts.out,
      ...(opts.bundle ? { bundle: opts.bundle } : {}),
    });
    out(res, () => `key ${res.keyFile} (kid ${res.kid}); public key added to ${res.bundleFile}`);
  });
agent
  .command("assert")
  .description("print an identity JWT for the agent whose key file is given")
  .requiredOption("--key <file>", "the agent's private key file")
  .addOption(new Option("--ttl <seconds>", "lifetime").default("60"))
  .option("--aud <audience>", "audience (default: the config's identity.audience, else leasehold)")
  .action(async (opts: { key: string; ttl: string; aud?: string }) => {
    const ttl = Number(opts.ttl);
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 86400)
      throw new CliError("--ttl: a whole number of seconds, 1-86400");
    let audience = opts.aud;
    if (!audience) {
      try {
        audience = config().identity.audience;
      } catch {
        audience = "leasehold";
      }
    }
    const jwt = await mintIdentityAssertion({ keyFile: opts.key, audience, ttlSeconds: ttl });
    process.stdout.write(`${jwt}\n`);
  });

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    const msg =
      err instanceof ApiError || err instanceof CliError || (err as Error).name === "ConfigError"
        ? (err as Error).message
        : ((err as Error).message ?? String(err));
    process.stderr.write(`leasehold: ${msg.split("\n")[0]}\n`);
    process.exitCode = 1;
  }
}

void main();
