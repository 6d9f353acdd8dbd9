import type { Command } from "commander";
import type { AuditRecord, VerifyResult } from "../../audit/index.js";
import { escapeLines, jsonSafe } from "../../util/escape.js";
import { examples, withOutputOption } from "../help.js";
import { table } from "../table.js";

/** The config's `audit` section, as far as the commands read it. */
export interface AuditSection {
  readonly file: string;
  readonly hmacKeyFile?: string | null | undefined;
}

/** The audit module, loaded when an audit command runs (not for `--help` or other commands). */
const auditModule = () => import("../../audit/index.js");

/** What the audit commands need from the CLI around them. */
export interface AuditCliContext {
  /** The config's audit section; called only when a command needs it (it may throw or reject with ConfigError). */
  readonly config: () => AuditSection | Promise<AuditSection>;
  /** Where output goes. @default process.stdout.write */
  readonly write?: (text: string) => void;
}

function describe(r: VerifyResult): string {
  const files = r.files?.length ?? 0;
  if (r.ok) {
    return `ok: ${r.records} records in ${files} file(s), chain intact${r.hmac ? ", hmac verified" : ""}${
      r.head ? ` (last seq ${r.head.seq}, hash ${r.head.hash})` : ""
    }`;
  }
  const where = r.line === undefined ? (r.file ?? "?") : `${r.file ?? "?"} line ${r.line}`;
  return `BROKEN at ${where}${r.seq === undefined ? "" : ` (seq ${r.seq})`}: ${r.problem ?? "?"} (${r.records} records before it are intact)`;
}

function row(r: AuditRecord): string[] {
  return [
    r.time,
    r.event,
    r.scope ?? "-",
    r.agent ?? "-",
    r.approver ?? "-",
    r.resource ?? "-",
    r.account ?? "-",
    r.lease_id ?? "-",
    r.tool ?? "-",
    r.decision ?? "-",
  ];
}

/** What each audit subcommand needs: the context, where to write, and whether --json is on. */
interface AuditIo {
  readonly ctx: AuditCliContext;
  readonly write: (text: string) => void;
  readonly json: (cmd: Command) => boolean;
}

/** The chains to check: the files named (grouped by chain), else the configured file and its rotated files. */
async function chainsToVerify(
  files: string[],
  keyOption: string | undefined,
  ctx: AuditCliContext,
): Promise<{ chains: string[][]; keyFile: string | undefined }> {
  const { auditFileSet, groupAuditFiles } = await auditModule();
  let keyFile = keyOption;
  if (files.length > 0) {
    const chains = groupAuditFiles(files);
    if (keyFile === undefined) {
      try {
        keyFile = (await ctx.config()).hmacKeyFile ?? undefined;
      } catch {
        // files named explicitly can be checked without a config
      }
    }
    return { chains, keyFile };
  }
  const c = await ctx.config();
  keyFile ??= c.hmacKeyFile ?? undefined;
  const set = await auditFileSet(c.file);
  if (set.length === 0) throw new Error(`no audit file at ${c.file}`);
  return { chains: [set], keyFile };
}

function addVerify(audit: Command, io: AuditIo): void {
  audit
    .command("verify [files...]")
    .description(
      "check the hash chain (and hmac) of the audit files; default: the configured file and its rotated files",
    )
    .option("--key <file>", "HMAC key file (default: the config's audit.hmacKeyFile)")
    .option(
      "--partial",
      "the oldest file may continue an archived chain (its first record need not be the genesis)",
    )
    .addHelpText(
      "after",
      examples(
        "leasehold audit verify",
        "leasehold audit verify /var/lib/leasehold/audit.jsonl* --key ./audit.key",
        "leasehold audit verify --partial ./archive/audit-2026-11.jsonl",
      ),
    )
    .action(async (files: string[], opts: { key?: string; partial?: boolean }, cmd: Command) => {
      const { loadAuditKey, verifyAuditFiles } = await auditModule();
      const { chains, keyFile } = await chainsToVerify(files, opts.key, io.ctx);
      const hmacKey = keyFile ? await loadAuditKey(keyFile) : undefined;
      const results: VerifyResult[] = [];
      for (const chain of chains)
        results.push(await verifyAuditFiles(chain, { hmacKey, partial: opts.partial }));
      const ok = results.every((r) => r.ok);
      io.write(
        io.json(cmd)
          ? `${jsonSafe(JSON.stringify({ ok, chains: results }, null, 2))}\n`
          : `${escapeLines(results.map(describe).join("\n"))}\n`,
      );
      if (!ok) process.exitCode = 1;
    });
}

interface QueryOpts {
  agent?: string;
  resource?: string;
  event?: string;
  lease?: string;
  task?: string;
  account?: string;
  approver?: string;
  since?: string;
  until?: string;
  limit: string;
  cursor?: string;
  file?: string[];
}

const QUERY_COLUMNS = [
  "TIME",
  "EVENT",
  "SCOPE",
  "AGENT",
  "APPROVER",
  "RESOURCE",
  "ACCOUNT",
  "LEASE",
  "TOOL",
  "DECISION",
];

async function runQuery(opts: QueryOpts, cmd: Command, io: AuditIo): Promise<void> {
  const limit = Number(opts.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw new Error("--limit: a whole number, 1-1000");
  const { queryAudit, unknownEventProblem } = await auditModule();
  const events = opts.event?.split(",").filter((e) => e !== "");
  const problem = events && unknownEventProblem(events);
  if (problem) throw new Error(`--event: ${problem}`);
  const page = await queryAudit({
    files: opts.file ?? [(await io.ctx.config()).file],
    agent: opts.agent,
    resource: opts.resource,
    event: events,
    leaseId: opts.lease,
    taskId: opts.task,
    account: opts.account,
    approver: opts.approver,
    since: opts.since,
    until: opts.until,
    limit,
    cursor: opts.cursor,
  });
  if (io.json(cmd)) {
    // Records hold what agents sent (and older sidecars stored unchecked): printed, never obeyed.
    io.write(`${jsonSafe(JSON.stringify(page, null, 2))}\n`);
    return;
  }
  const lines =
    page.records.length === 0
      ? ["no matching audit records"]
      : [table([QUERY_COLUMNS, ...page.records.map(row)])];
  if (page.next_cursor) lines.push(`more: --cursor ${page.next_cursor}`);
  io.write(`${lines.join("\n")}\n`);
}

function addQuery(audit: Command, io: AuditIo): void {
  const query = audit
    .command("query")
    .description("audit records, newest first")
    .option("--agent <id>", "the agent (SPIFFE ID) that acted")
    .option("--resource <name>")
    .option("--event <events>", "event(s), comma separated: checkout,reveal,tool_call,...")
    .option("--lease <id>", "one lease")
    .option("--task <id>", "one task id")
    .option("--account <name>")
    .option("--approver <name>")
    .option("--since <when>", "15m, 1h, 7d or an RFC 3339 time")
    .option("--until <when>", "same forms as --since")
    .option("--limit <n>", "records per page (1-1000)", "50")
    .option("--cursor <cursor>", "the next page, as printed by the previous one")
    .option("--file <files...>", "live audit file(s) to search (default: the configured one)")
    .addHelpText(
      "after",
      examples(
        "leasehold audit query --since 1h",
        "leasehold audit query --agent spiffe://example.org/agent/reporter --event checkout,reveal",
        "leasehold audit query --lease lse_01J... --output json",
      ),
    );
  withOutputOption(query).action((opts: QueryOpts, cmd: Command) => runQuery(opts, cmd, io));
}

function addKeygen(audit: Command, io: AuditIo): void {
  audit
    .command("keygen")
    .description("create an HMAC key file (0600) for audit.hmacKeyFile")
    .requiredOption("--out <file>", "where to write the key (never overwritten)")
    .addHelpText("after", examples("leasehold audit keygen --out /etc/leasehold/audit.key"))
    .action(async (opts: { out: string }, cmd: Command) => {
      const { createAuditKey } = await auditModule();
      try {
        await createAuditKey(opts.out);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new Error(
          code === "EEXIST"
            ? `${opts.out} exists; it is never overwritten`
            : `cannot write ${opts.out}: ${code ?? "error"}`,
        );
      }
      io.write(
        io.json(cmd)
          ? `${JSON.stringify({ keyFile: opts.out })}\n`
          : `audit key written to ${opts.out} (0600); set audit.hmacKeyFile to it and keep a copy where verifiers can reach it\n`,
      );
    });
}

/**
 * Adds `audit verify [FILE...]`, `audit query`, `audit keygen` and `audit schema` under `parent`
 * (the `leasehold` program). A broken chain sets exit code 1; failures to read throw an Error
 * whose message is the one line to print.
 */
export function registerAuditCommands(parent: Command, ctx: AuditCliContext): Command {
  const io: AuditIo = {
    ctx,
    write: ctx.write ?? ((s: string) => void process.stdout.write(s)),
    json: (cmd) => {
      const o = cmd.optsWithGlobals<{ json?: boolean; output?: string }>();
      return o.json === true || o.output === "json";
    },
  };
  const audit = parent
    .command("audit")
    .description("the audit trail: verify its chain, query it")
    .addHelpText(
      "after",
      examples("leasehold audit verify", "leasehold audit query --since 15m --event checkout"),
    );
  addVerify(audit, io);
  addQuery(audit, io);
  addKeygen(audit, io);
  audit
    .command("schema")
    .description("print the JSON Schema of an audit record")
    .addHelpText("after", examples("leasehold audit schema > audit-record.schema.json"))
    .action(async () => {
      const { auditRecordJsonSchema } = await auditModule();
      io.write(`${JSON.stringify(auditRecordJsonSchema(), null, 2)}\n`);
    });
  return audit;
}
