import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { CliError } from "../cli-error.js";
import type { CliContext } from "../context.js";
import { examples, withOutputOption } from "../help.js";
import { table } from "../table.js";

async function readRegistration(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    throw new CliError(`cannot read ${file}`);
  }
  const { parse: parseYaml } = await import("yaml");
  try {
    return parseYaml(text);
  } catch (err) {
    throw new CliError(`${file} is not valid YAML or JSON: ${(err as Error).message.split("\n")[0]}`);
  }
}

const path = (name: string, suffix = ""): string => `/v1/resources/${encodeURIComponent(name)}${suffix}`;

interface RegisterAnswer {
  created: boolean;
  dryRun: boolean;
  registered?: boolean;
  checks: string[];
  accounts?: Array<{ account: string; ok: boolean; detail: string; record?: "removed" | "kept" }>;
  failed?: string[];
  warnings?: string[];
  resource: { accounts: Array<{ name: string; state: string }> };
}

/**
 * The first line of a registration's answer: what happened to the resource as a whole. A
 * registration that stored nothing is an error answer instead (main.ts prints one FAIL line per
 * account in its details, then the error).
 */
function registerHeadline(name: string, res: RegisterAnswer, dryRun: boolean): string {
  const failed = res.failed ?? [];
  if (dryRun) {
    const verb = res.created ? "registered" : "updated";
    return failed.length === 0
      ? `dry run: ${name} would be ${verb}`
      : `dry run: ${name} would not be ${verb}: ${failed.length} account(s) failed`;
  }
  const verb = res.created ? "registered" : "updated";
  return failed.length === 0
    ? `${name} ${verb}`
    : `${name} ${verb} without ${failed.length} failed account(s) (--allow-partial)`;
}

function addRegister(resources: Command, cli: CliContext): void {
  resources
    .command("register")
    .description("register (or update) a resource from a YAML/JSON file")
    .requiredOption("-f, --file <file>", "registration file")
    .option("--dry-run", "check everything, change nothing")
    .option("--allow-partial", "register the accounts that pass even when others fail")
    .addHelpText(
      "after",
      examples(
        "leasehold resources register -f orders-db.yaml --dry-run   # check it all, change nothing",
        "leasehold resources register -f orders-db.yaml",
      ),
    )
    .action(async (opts: { file: string; dryRun?: boolean; allowPartial?: boolean }) => {
      const reg = await readRegistration(opts.file);
      const name = (reg as { name?: unknown } | null)?.name;
      if (typeof name !== "string" || name === "") throw new CliError(`${opts.file}: name is required`);
      const query = [opts.dryRun ? "dry_run=true" : "", opts.allowPartial ? "allow_partial=true" : ""]
        .filter(Boolean)
        .join("&");
      const c = await cli.client();
      const res = await c.request<RegisterAnswer>("PUT", path(name, query ? `?${query}` : ""), reg);
      const dryRun = Boolean(opts.dryRun);
      cli.out(res, () =>
        [
          registerHeadline(name, res, dryRun),
          ...res.checks.map((c) => `  ok    ${c}`),
          ...(res.warnings ?? []).map((w) => `  warn  ${w}`),
          ...(res.accounts ?? []).map(
            (a) => `  ${a.ok ? "ok  " : "FAIL"}  account ${a.account}: ${a.detail}`,
          ),
          ...(dryRun ? [] : res.resource.accounts.map((a) => `  account ${a.name}: ${a.state}`)),
        ].join("\n"),
      );
      if ((res.failed ?? []).length > 0) process.exitCode = 1;
    });
}

function addList(resources: Command, cli: CliContext): void {
  const list = resources
    .command("list")
    .description("the registered resources: name, adapter, number of accounts")
    .addHelpText(
      "after",
      examples(
        "leasehold resources list",
        "leasehold resources list --output json | jq -r '.resources[].name'",
      ),
    );
  withOutputOption(list).action(async () => {
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
  resources
    .command("show <name>")
    .description("one resource: each account's state, lease, last rotation and failures")
    .addHelpText(
      "after",
      examples("leasehold resources show orders-db", "leasehold --json resources show orders-db"),
    )
    .action(async (name: string) => {
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
  resources
    .command("verify <name>")
    .description("log in to the target with each account's password from Vault; exit 1 when one fails")
    .addHelpText("after", examples("leasehold resources verify orders-db"))
    .action(async (name: string) => {
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
    .description("rotate every free account of a resource now (or, with --admin, its admin password)")
    .option("--admin", "rotate the resource's admin password instead of its accounts")
    .addHelpText(
      "after",
      examples("leasehold resources rotate orders-db", "leasehold resources rotate orders-db --admin"),
    )
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

interface RemoveAnswer {
  removed: boolean;
  accounts?: Array<{ account: string; password: string; detail: string; lease_id?: string }>;
  kept?: string;
}

/** One account's line of a removal: the state its password was left in. */
function leftAs(a: NonNullable<RemoveAnswer["accounts"]>[number]): string {
  const saw = a.lease_id ? `; still the password lease ${a.lease_id} saw` : "";
  switch (a.password) {
    case "rotated":
      return `  ok    account ${a.account}: rotated (${a.detail})`;
    case "unchanged":
      return `  ok    account ${a.account}: left as is: ${a.detail}`;
    case "quarantined":
      return `  WARN  account ${a.account}: left as is: quarantined (last error: ${a.detail})${saw}`;
    case "gone":
      return `  WARN  account ${a.account}: left as is: account gone from the target (${a.detail})${saw}`;
    case "busy":
      return `  WARN  account ${a.account}: left as is because a rotation of it is still running${saw}`;
    default:
      return `  WARN  account ${a.account}: left as is because its last rotation failed (${a.detail})${saw}`;
  }
}

function addRemove(resources: Command, cli: CliContext): void {
  resources
    .command("remove <name>")
    .description("unregister a resource; each account's password is rotated or left as reported")
    .option(
      "--force",
      "revoke active leases first, and release the resource whatever state its accounts are in",
    )
    .addHelpText(
      "after",
      examples("leasehold resources remove orders-db", "leasehold resources remove orders-db --force"),
    )
    .action(async (name: string, opts: { force?: boolean }) => {
      const res = await (await cli.client()).request<RemoveAnswer>(
        "DELETE",
        path(name, opts.force ? "?force=true" : ""),
      );
      cli.out(res, () =>
        [`${name} removed`, ...(res.accounts ?? []).map(leftAs), ...(res.kept ? [`  ${res.kept}`] : [])].join(
          "\n",
        ),
      );
    });
}

/** `leasehold resources register|list|show|verify|rotate|remove`, through the sidecar's HTTP API. */
export function registerResourceCommands(program: Command, cli: CliContext): void {
  const resources = program
    .command("resources")
    .description("register and manage legacy systems")
    .addHelpText(
      "after",
      examples(
        "leasehold resources register -f orders-db.yaml",
        "leasehold resources list",
        "leasehold resources show orders-db",
      ),
    );
  addRegister(resources, cli);
  addList(resources, cli);
  addShow(resources, cli);
  addVerifyAndRotate(resources, cli);
  addRemove(resources, cli);
}
