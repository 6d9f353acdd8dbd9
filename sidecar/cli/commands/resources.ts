import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { parse as parseYaml } from "yaml";
import { CliError } from "../cli-error.js";
import type { CliContext } from "../context.js";
import { table } from "../table.js";

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

const path = (name: string, suffix = ""): string => `/v1/resources/${encodeURIComponent(name)}${suffix}`;

function addRegister(resources: Command, cli: CliContext): void {
  resources
    .command("register")
    .description("register (or update) a resource from a YAML/JSON file")
    .requiredOption("-f, --file <file>", "registration file")
    .option("--dry-run", "check everything, change nothing")
    .action(async (opts: { file: string; dryRun?: boolean }) => {
      const reg = await readRegistration(opts.file);
      const name = (reg as { name?: unknown } | null)?.name;
      if (typeof name !== "string" || name === "") throw new CliError(`${opts.file}: name is required`);
      const c = await cli.client();
      const res = await c.request<{
        created: boolean;
        dryRun: boolean;
        checks: string[];
        resource: { accounts: Array<{ name: string; state: string }> };
      }>("PUT", path(name, opts.dryRun ? "?dry_run=true" : ""), reg);
      cli.out(res, () =>
        [
          opts.dryRun
            ? `dry run: ${name} would be ${res.created ? "registered" : "updated"}`
            : `${name} ${res.created ? "registered" : "updated"}`,
          ...res.checks.map((c) => `  ok  ${c}`),
          ...(opts.dryRun ? [] : res.resource.accounts.map((a) => `  account ${a.name}: ${a.state}`)),
        ].join("\n"),
      );
    });
}

function addList(resources: Command, cli: CliContext): void {
  resources.command("list").action(async () => {
    const res = await (await cli.client()).request<{
      resources: Array<{ name: string; adapter: string; accounts: number }>;
    }>("GET", "/v1/resources");
    cli.out(res, () =>
      res.resources.length === 0
        ? "no resources registered"
        : table([
            ["NAME", "ADAPTER", "ACCOUNTS"],
            ...res.resources.map((r) => [r.name, r.adapter, String(r.accounts)]),
          ]),
    );
  });
}

function addShow(resources: Command, cli: CliContext): void {
  resources.command("show <name>").action(async (name: string) => {
    const res = await (await cli.client()).request<{
      name: string;
      adapter: string;
      accounts: Array<{
        name: string;
        state: string;
        lease_id?: string;
        last_rotated_at?: string;
        failures?: number;
      }>;
    }>("GET", path(name));
    cli.out(res, () =>
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
}

function addVerifyAndRotate(resources: Command, cli: CliContext): void {
  resources.command("verify <name>").action(async (name: string) => {
    const res = await (await cli.client()).request<{
      results: Array<{ account: string; ok: boolean; reason?: string }>;
    }>("POST", path(name, "/verify"), {});
    cli.out(res, () =>
      res.results
        .map((r) => `${r.ok ? "ok  " : "FAIL"} ${r.account}${r.reason ? `: ${r.reason}` : ""}`)
        .join("\n"),
    );
    if (res.results.some((r) => !r.ok)) process.exitCode = 1;
  });
  resources
    .command("rotate <name>")
    .option("--admin", "rotate the resource's admin password instead of its accounts")
    .action(async (name: string, opts: { admin?: boolean }) => {
      const res = await (await cli.client()).request<{
        results: Array<{ account: string; status: string; error?: string }>;
      }>("POST", path(name, "/rotate"), opts.admin ? { admin: true } : {});
      cli.out(res, () =>
        res.results.map((r) => `${r.account}: ${r.status}${r.error ? ` (${r.error})` : ""}`).join("\n"),
      );
      const refused = (r: { status: string }) =>
        r.status === "failed" || (opts.admin && r.status !== "rotated");
      if (res.results.some(refused)) process.exitCode = 1;
    });
}

function addRemove(resources: Command, cli: CliContext): void {
  resources
    .command("remove <name>")
    .option("--force", "revoke active leases first")
    .action(async (name: string, opts: { force?: boolean }) => {
      const res = await (await cli.client()).request<unknown>(
        "DELETE",
        path(name, opts.force ? "?force=true" : ""),
      );
      cli.out(res, () => `${name} removed`);
    });
}

/** `leasehold resources register|list|show|verify|rotate|remove`, through the sidecar's HTTP API. */
export function registerResourceCommands(program: Command, cli: CliContext): void {
  const resources = program.command("resources").description("register and manage legacy systems");
  addRegister(resources, cli);
  addList(resources, cli);
  addShow(resources, cli);
  addVerifyAndRotate(resources, cli);
  addRemove(resources, cli);
}
