/**
 * Generates the reference parts of the docs from the code, so they cannot drift:
 *
 * - docs/configuration.md: every key of leasehold.yaml (sidecar/config.ts), of a registration
 *   file (sidecar/resources/types.ts) and of each built-in adapter's `connection`, with type,
 *   default, description (the field's TSDoc) and an example;
 * - docs/api.md: the route table of the HTTP API (sidecar/openapi) and the error catalogue.
 * - docs/policy.md: the Cedar request context (sidecar/policy/context-fields.ts), the agent and
 *   resource attributes and the whole schema policies are validated against.
 * - docs/audit.md: the audit event kinds and their scopes (AUDIT_EVENTS, sidecar/audit/types.ts),
 *   and sidecar/audit/audit-record.schema.json, the record schema as JSON Schema.
 *
 * Only the text between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` is rewritten;
 * the prose around it is hand-written. `npx tsx scripts/gen-docs.ts` rewrites the files;
 * `--check` exits 1 when a file is out of date. test/docs/configuration.test.ts runs the same
 * generation in memory.
 */
import { readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { z } from "zod";
import { builtinAdapters } from "../adapters/registry.js";
import { configSchema } from "../sidecar/config.js";
import { ERROR_STATUS } from "../sidecar/errors.js";
import { openApiPath, ROUTES, type RouteDoc, routeErrors } from "../sidecar/openapi/index.js";
import { renderPolicyBlocks } from "./policy-docs.js";
import { auditEventsMarkdown, auditRecordJsonSchema } from "../sidecar/audit/record-schema.js";
import { registrationSchema } from "../sidecar/resources/types.js";

type Json = Record<string, unknown>;

/** A field's TSDoc: the text, and what its `@default` tag says (verbatim). */
export interface FieldDoc {
  readonly text: string;
  readonly tsdocDefault?: string;
}

/** One documented key. */
export interface KeyRow {
  /** `listen.port`, `identity.trust[].jwks` */
  readonly key: string;
  /** `kind: agents` when the key belongs to one variant of a union, else "". */
  readonly when: string;
  readonly type: string;
  readonly required: boolean;
  /** The schema's default, when it has one. */
  readonly hasDefault: boolean;
  readonly default?: unknown;
  readonly description: string;
  /** What the TSDoc's @default says, verbatim (checked against `default` by the tests). */
  readonly tsdocDefault?: string;
  readonly example?: string;
}

/** Hand-written text for keys whose schema carries no TSDoc, and examples. */
export interface KeyExtra {
  readonly description?: string;
  readonly example?: string;
}

/** The lookup key of a field: path segments joined by "/", variants as `{kind=agents}`. */
function docKey(segs: readonly string[]): string {
  return segs.join("/");
}

function comment(node: ts.Node, source: ts.SourceFile): FieldDoc | undefined {
  const ranges = ts.getLeadingCommentRanges(source.text, node.getFullStart()) ?? [];
  const last = ranges.filter((r) => source.text.startsWith("/**", r.pos)).at(-1);
  if (!last) return undefined;
  const body = source.text
    .slice(last.pos + 3, last.end - 2)
    .split("\n")
    .map((l) => l.replace(/^\s*\*?\s?/, ""))
    .join(" ")
    .replace(/\s+/g, " ")
    .trim();
  const at = body.search(/@default\b/);
  if (at < 0) return { text: body };
  return { text: body.slice(0, at).trim(), tsdocDefault: body.slice(at + "@default".length).trim() };
}

function calleeName(call: ts.CallExpression): { name: string; target?: ts.Expression } {
  const c = call.expression;
  if (ts.isPropertyAccessExpression(c)) return { name: c.name.text, target: c.expression };
  if (ts.isIdentifier(c)) return { name: c.text };
  return { name: "" };
}

function propName(p: ts.ObjectLiteralElementLike): string | undefined {
  if (ts.isShorthandPropertyAssignment(p)) return p.name.text;
  if (!ts.isPropertyAssignment(p)) return undefined;
  if (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name)) return p.name.text;
  return undefined;
}

/** The value of `key: value` or of shorthand `key`. */
function propValue(p: ts.ObjectLiteralElementLike): ts.Expression | undefined {
  if (ts.isShorthandPropertyAssignment(p)) return p.name;
  return ts.isPropertyAssignment(p) ? p.initializer : undefined;
}

const OBJECT_FACTORIES = new Set(["strictObject", "object", "looseObject"]);

/** A parsed source file: its top-level constants and what it imports (relative modules only). */
interface SourceModule {
  readonly consts: Map<string, ts.Expression>;
  readonly imports: Map<string, { readonly file: string; readonly name: string }>;
}

function parseModule(file: string, text: string): SourceModule {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const consts = new Map<string, ts.Expression>();
  const imports = new Map<string, { file: string; name: string }>();
  for (const st of source.statements) {
    if (ts.isVariableStatement(st)) {
      for (const d of st.declarationList.declarations) {
        if (ts.isIdentifier(d.name) && d.initializer) consts.set(d.name.text, d.initializer);
      }
    }
    const spec =
      ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier) ? st.moduleSpecifier.text : "";
    const named = ts.isImportDeclaration(st) ? st.importClause?.namedBindings : undefined;
    if (spec.startsWith(".") && named && ts.isNamedImports(named)) {
      const target = resolve(dirname(file), spec.replace(/\.js$/, ".ts"));
      for (const el of named.elements) {
        imports.set(el.name.text, { file: target, name: (el.propertyName ?? el.name).text });
      }
    }
  }
  return { consts, imports };
}

/**
 * Reads the TSDoc of every field of the zod schema `exportName` in `file`, following constants
 * (`const tls = z.strictObject(...)`), also those imported from other files of the project,
 * through objects, arrays, records, unions and discriminated unions. Keys are path segments
 * joined by "/", array items `[]`, variants `{kind=agents}`.
 */
export function fieldDocs(
  file: string,
  text: string,
  exportName: string,
  read: (file: string) => string = (f) => readFileSync(f, "utf8"),
): Map<string, FieldDoc> {
  const modules = new Map<string, SourceModule>([[file, parseModule(file, text)]]);
  const load = (f: string): SourceModule | undefined => {
    if (!modules.has(f)) {
      try {
        modules.set(f, parseModule(f, read(f)));
      } catch {
        return undefined;
      }
    }
    return modules.get(f);
  };
  /** The initializer a name stands for, in `file`, and the file it is in. */
  const lookup = (f: string, name: string, seen: ReadonlySet<string>) => {
    const key = `${f}#${name}`;
    if (seen.has(key)) return undefined;
    const mod = load(f);
    const local = mod?.consts.get(name);
    if (local) return { init: local, file: f, seen: new Set([...seen, key]) };
    const imported = mod?.imports.get(name);
    if (!imported) return undefined;
    const other = load(imported.file)?.consts.get(imported.name);
    const otherKey = `${imported.file}#${imported.name}`;
    return other && !seen.has(otherKey)
      ? { init: other, file: imported.file, seen: new Set([...seen, key, otherKey]) }
      : undefined;
  };
  const out = new Map<string, FieldDoc>();
  const literalOf = (
    node: ts.Expression,
    f: string,
    key: string,
    seen: ReadonlySet<string>,
  ): string | undefined => {
    if (ts.isIdentifier(node)) {
      const found = lookup(f, node.text, seen);
      return found ? literalOf(found.init, found.file, key, found.seen) : undefined;
    }
    if (!ts.isCallExpression(node)) return undefined;
    const { name, target } = calleeName(node);
    if (OBJECT_FACTORIES.has(name)) {
      const obj = node.arguments[0];
      if (!obj || !ts.isObjectLiteralExpression(obj)) return undefined;
      for (const p of obj.properties) {
        if (propName(p) !== key || !ts.isPropertyAssignment(p)) continue;
        const init = p.initializer;
        if (ts.isCallExpression(init) && calleeName(init).name === "literal") {
          const arg = init.arguments[0];
          if (arg && ts.isStringLiteral(arg)) return arg.text;
        }
      }
      return undefined;
    }
    return target ? literalOf(target, f, key, seen) : undefined;
  };
  const walk = (node: ts.Expression, f: string, segs: readonly string[], seen: ReadonlySet<string>): void => {
    if (ts.isIdentifier(node)) {
      const found = lookup(f, node.text, seen);
      if (found) walk(found.init, found.file, segs, found.seen);
      return;
    }
    if (!ts.isCallExpression(node)) return;
    const { name, target } = calleeName(node);
    const args = node.arguments;
    const objectArg = (obj: ts.Expression | undefined) => {
      if (!obj || !ts.isObjectLiteralExpression(obj)) return;
      for (const p of obj.properties) {
        const key = propName(p);
        const value = propValue(p);
        if (key === undefined || value === undefined) continue;
        const doc = comment(p, p.getSourceFile());
        if (doc) out.set(docKey([...segs, key]), doc);
        walk(value, f, [...segs, key], seen);
      }
    };
    if (OBJECT_FACTORIES.has(name)) {
      objectArg(args[0]);
      return;
    }
    if (name === "extend" && target) {
      walk(target, f, segs, seen);
      objectArg(args[0]);
      return;
    }
    if (name === "array" && args[0]) {
      walk(args[0], f, [...segs, "[]"], seen);
      return;
    }
    if (name === "record" && args[1]) {
      walk(args[1], f, [...segs, "*"], seen);
      return;
    }
    if ((name === "union" || name === "discriminatedUnion") && args.length > 0) {
      const disc = name === "discriminatedUnion" ? args[0] : undefined;
      const list = args[name === "discriminatedUnion" ? 1 : 0];
      if (!list || !ts.isArrayLiteralExpression(list)) return;
      for (const el of list.elements) {
        const label = disc && ts.isStringLiteral(disc) ? literalOf(el, f, disc.text, seen) : undefined;
        walk(
          el,
          f,
          label && disc && ts.isStringLiteral(disc) ? [...segs, `{${disc.text}=${label}}`] : segs,
          seen,
        );
      }
      return;
    }
    // Modifiers (.default, .optional, .prefault, .min, …) wrap the schema they are called on.
    if (target) walk(target, f, segs, seen);
  };
  const root = lookup(file, exportName, new Set());
  if (!root) throw new Error(`${file}: no const ${exportName}`);
  walk(root.init, root.file, [], root.seen);
  return out;
}

/** The exported zod objects of a file whose top-level keys are exactly `keys`. */
function exportWithKeys(file: string, text: string, keys: readonly string[]): string | undefined {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const want = [...keys].sort().join(",");
  for (const st of source.statements) {
    if (!ts.isVariableStatement(st)) continue;
    if (!st.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) continue;
    for (const d of st.declarationList.declarations) {
      if (!ts.isIdentifier(d.name) || !d.initializer) continue;
      let init: ts.Expression = d.initializer;
      while (ts.isCallExpression(init) && !OBJECT_FACTORIES.has(calleeName(init).name)) {
        const t = calleeName(init).target;
        if (!t) break;
        init = t;
      }
      if (!ts.isCallExpression(init)) continue;
      const obj = init.arguments[0];
      if (!obj || !ts.isObjectLiteralExpression(obj)) continue;
      const names = obj.properties.map(propName).filter((n): n is string => n !== undefined);
      if (names.sort().join(",") === want) return d.name.text;
    }
  }
  return undefined;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function literal(v: unknown): string {
  return `\`${JSON.stringify(v)}\``;
}

/** A short, human description of a JSON Schema node's type and constraints. */
export function typeText(s: Json): string {
  if ("const" in s) return literal(s.const);
  if (Array.isArray(s.enum)) return `one of ${s.enum.map(literal).join(", ")}`;
  const options = (s.anyOf ?? s.oneOf) as Json[] | undefined;
  if (Array.isArray(options)) return options.map(typeText).join(" or ");
  const type = s.type;
  if (Array.isArray(type)) return type.map((t) => typeText({ ...s, type: t })).join(" or ");
  switch (type) {
    case "string": {
      if (s.format === "uri") return "URL";
      const parts: string[] = [];
      if (typeof s.pattern === "string") parts.push(`matching \`${s.pattern}\``);
      if (typeof s.minLength === "number" && s.minLength > 1)
        parts.push(`at least ${s.minLength} characters`);
      if (typeof s.minLength === "number" && s.minLength === 1) parts.push("non-empty");
      if (typeof s.maxLength === "number") parts.push(`at most ${s.maxLength} characters`);
      return parts.length ? `string, ${parts.join(", ")}` : "string";
    }
    case "integer":
    case "number": {
      const lo =
        typeof s.minimum === "number"
          ? `${s.minimum}`
          : typeof s.exclusiveMinimum === "number"
            ? `> ${s.exclusiveMinimum}`
            : undefined;
      const hi = typeof s.maximum === "number" && s.maximum < MAX_SAFE ? `${s.maximum}` : undefined;
      const from = lo === undefined || lo.startsWith(">") ? lo : `≥ ${lo}`;
      const range =
        lo !== undefined && hi !== undefined && !lo.startsWith(">")
          ? `${lo}–${hi}`
          : [from, hi === undefined ? undefined : `≤ ${hi}`].filter(Boolean).join(", ");
      return range ? `${type} ${range}` : String(type);
    }
    case "array": {
      const items = (s.items ?? {}) as Json;
      const min = typeof s.minItems === "number" && s.minItems > 0 ? `, at least ${s.minItems}` : "";
      const max = typeof s.maxItems === "number" ? `, at most ${s.maxItems}` : "";
      const inner =
        items.type === "object" || items.oneOf || items.anyOf ? "entries (below)" : typeText(items);
      return `list of ${inner}${min}${max}`;
    }
    case "object":
      return s.properties ? "object" : "map";
    case "null":
      return "`null`";
    default:
      return typeof type === "string" ? type : "any";
  }
}

/** The discriminator of a oneOf/anyOf of objects: a key every option fixes with `const`. */
function discriminator(options: readonly Json[]): string | undefined {
  const first = options[0]?.properties as Record<string, Json> | undefined;
  if (!first) return undefined;
  return Object.keys(first).find((k) =>
    options.every((o) => {
      const p = (o.properties as Record<string, Json> | undefined)?.[k];
      return p !== undefined && "const" in p;
    }),
  );
}

interface Walk {
  /** Top-level objects get a row too (a registration); else they are sections (leasehold.yaml). */
  readonly topLevelRows: boolean;
  readonly docs: Map<string, FieldDoc>;
  readonly extras: Readonly<Record<string, KeyExtra>>;
  readonly rows: KeyRow[];
  readonly used: Set<string>;
}

function displayKey(segs: readonly string[]): string {
  return segs
    .filter((s) => !s.startsWith("{"))
    .join(".")
    .replace(/\.\[\]/g, "[]")
    .replace(/\.\*/g, ".<name>");
}

function extraKey(key: string, when: string): string {
  return when ? `${key} (${when})` : key;
}

function pushRow(
  w: Walk,
  segs: readonly string[],
  node: Json,
  required: boolean,
  typeOverride?: string,
): void {
  const key = displayKey(segs);
  const variants = segs.filter((s) => s.startsWith("{")).map((s) => s.slice(1, -1).replace("=", ": "));
  const when = variants.join(", ");
  const doc = w.docs.get(docKey(segs));
  const ek = extraKey(key, when);
  const extra = w.extras[ek];
  if (extra) w.used.add(ek);
  const hasDefault = "default" in node;
  const description = [doc?.text ?? "", extra?.description ?? ""].filter((t) => t !== "").join(" ");
  w.rows.push({
    key,
    when,
    type: typeOverride ?? typeText(node),
    required,
    hasDefault,
    ...(hasDefault ? { default: node.default } : {}),
    description,
    ...(doc?.tsdocDefault !== undefined ? { tsdocDefault: doc.tsdocDefault } : {}),
    ...(extra?.example !== undefined ? { example: extra.example } : {}),
  });
}

function walkObject(w: Walk, node: Json, segs: readonly string[]): void {
  const props = (node.properties ?? {}) as Record<string, Json>;
  const required = new Set((node.required ?? []) as string[]);
  for (const [k, child] of Object.entries(props)) walkNode(w, child, [...segs, k], required.has(k));
}

function walkNode(w: Walk, node: Json, segs: readonly string[], required: boolean): void {
  const options = (node.oneOf ?? node.anyOf) as Json[] | undefined;
  if (Array.isArray(options)) {
    const objects = options.filter((o) => o.type === "object" && o.properties);
    const disc = objects.length === options.length ? discriminator(options) : undefined;
    if (disc) {
      const values = options.map((o) => (o.properties as Record<string, Json>)[disc]?.const);
      // An array's items are described by the array's row.
      if (segs.at(-1) !== "[]") pushRow(w, segs, node, required, `object, by \`${disc}\` (below)`);
      pushRow(w, [...segs, disc], { enum: values }, true);
      for (const o of options) {
        const value = String((o.properties as Record<string, Json>)[disc]?.const);
        const rest = { ...o, properties: { ...(o.properties as Json) } };
        delete (rest.properties as Record<string, Json>)[disc];
        walkObject(w, rest, [...segs, `{${disc}=${value}}`]);
      }
      return;
    }
    pushRow(w, segs, node, required);
    for (const o of objects) walkObject(w, o, segs);
    return;
  }
  if (node.type === "object" && node.properties) {
    if (segs.length > 1 || w.topLevelRows) pushRow(w, segs, node, required);
    walkObject(w, node, segs);
    return;
  }
  pushRow(w, segs, node, required);
  if (node.type === "array") {
    const items = (node.items ?? {}) as Json;
    if (items.type === "object" || items.oneOf || items.anyOf) {
      if (items.oneOf || items.anyOf) walkNode(w, items, [...segs, "[]"], true);
      else walkObject(w, items, [...segs, "[]"]);
    }
  }
}

/**
 * The rows of a zod schema's keys (input side: what a file may say), with TSDoc from its
 * source and hand-written extras. Unknown extras keys are an error: they would document a
 * key that does not exist.
 */
export function keyRows(
  schema: z.ZodType,
  docs: Map<string, FieldDoc>,
  extras: Readonly<Record<string, KeyExtra>> = {},
  opts: { topLevelRows?: boolean } = {},
): KeyRow[] {
  const js = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as Json;
  const w: Walk = { topLevelRows: opts.topLevelRows ?? true, docs, extras, rows: [], used: new Set() };
  walkObject(w, js, []);
  const unused = Object.keys(extras).filter((k) => !w.used.has(k));
  if (unused.length > 0) throw new Error(`documentation for keys that do not exist: ${unused.join(", ")}`);
  return w.rows;
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function defaultText(r: KeyRow): string {
  if (r.hasDefault) {
    const d = r.default;
    if (d !== null && typeof d === "object" && !Array.isArray(d) && Object.keys(d).length === 0) return "";
    return literal(d);
  }
  if (r.tsdocDefault) return r.tsdocDefault;
  return r.required ? "**required**" : "";
}

/** A Markdown table of key rows. */
export function renderRows(rows: readonly KeyRow[]): string {
  const lines = ["| key | type | default | description | example |", "|---|---|---|---|---|"];
  for (const r of rows) {
    const key = `\`${r.key}\`${r.when ? `<br>when \`${r.when}\`` : ""}`;
    lines.push(
      `| ${cell(key)} | ${cell(r.type)} | ${cell(defaultText(r))} | ${cell(r.description)} | ${cell(r.example ?? "")} |`,
    );
  }
  return lines.join("\n");
}

/** Text for config keys whose schema has no TSDoc, and examples. Keys are as displayed. */
export const CONFIG_EXTRAS: Readonly<Record<string, KeyExtra>> = {
  "listen.host": {
    description: "Address of the TCP listener; a non-loopback address needs `allowRemote`.",
    example: "`127.0.0.1`",
  },
  "listen.port": { description: "TCP port of the listener.", example: "`7733`" },
  "listen.socket": {
    description:
      "When set, the sidecar listens on this socket instead of TCP (Kubernetes pods, shared emptyDir).",
    example: "`/run/leasehold/leasehold.sock`",
  },
  "listen.allowRemote": { example: "`true` (compose: the sidecar on its own network)" },
  "listen.allowedHosts": { example: "`[leasehold]`" },
  "listen.allowedOrigins": { example: '`["http://127.0.0.1:7733"]`' },
  "redis.url": {
    description: "Redis to keep leases, the expiry index, locks and events in; password and db in the URL.",
    example: "`redis://:${REDIS_PASSWORD}@redis:6379/0`",
  },
  "redis.prefix": {
    description:
      "Every key starts with it. Sidecars with the same Redis prefix and Vault prefix form one cluster.",
    example: '`"leasehold:prod:"`',
  },
  "redis.cluster": { example: '`["redis-1:6379", "redis-2:6379"]`' },
  "redis.sentinel": { example: '`{ name: mymaster, sentinels: ["s1:26379"] }`' },
  "redis.sentinel.name": { description: "The monitored master's name.", example: "`mymaster`" },
  "redis.sentinel.sentinels": {
    description: "Sentinels, `host:port`.",
    example: '`["s1:26379", "s2:26379"]`',
  },
  "vault.address": { description: "Vault's API address.", example: "`https://vault.example.org:8200`" },
  "vault.auth": {
    description: "How the sidecar logs in to Vault.",
    example: "`{ method: token, token: ${VAULT_TOKEN} }`",
  },
  "vault.auth.method": {
    description:
      "`token`: a token given here; `approle`: role id + secret id; `jwt`: a JWT read from a file (Kubernetes).",
    example: "`jwt`",
  },
  "vault.auth.token (method: token)": {
    description: "A Vault token; use `${VAULT_TOKEN}`.",
    example: "`${VAULT_TOKEN}`",
  },
  "vault.auth.roleId (method: approle)": {
    description: "The AppRole's role id.",
    example: "`${VAULT_ROLE_ID}`",
  },
  "vault.auth.secretId (method: approle)": {
    description: "The AppRole's secret id; the token it gives is renewed, then logged in again.",
    example: "`${VAULT_SECRET_ID}`",
  },
  "vault.auth.mount (method: approle)": {
    description: "Where the AppRole auth method is mounted.",
    example: "`approle`",
  },
  "vault.auth.role (method: jwt)": { description: "The Vault role to log in as.", example: "`leasehold`" },
  "vault.auth.jwtFile (method: jwt)": {
    description:
      "File holding the JWT, read at each login (a projected service-account token is rotated by the kubelet).",
    example: "`/var/run/secrets/vault/token`",
  },
  "vault.auth.mount (method: jwt)": {
    description: "Where the JWT (or Kubernetes) auth method is mounted.",
    example: "`kubernetes`",
  },
  "vault.mount": { example: "`secret`" },
  "vault.prefix": {
    description: "Everything leasehold stores is under `<mount>/data/<prefix>/`.",
    example: "`leasehold/prod`",
  },
  "vault.timeoutMs": { example: "`2000`" },
  "identity.audience": {
    description: "The `aud` every identity JWT must carry (exactly one).",
    example: "`leasehold`",
  },
  "identity.trust": {
    description: "Who may sign identity JWTs. No entry: every checkout is refused.",
    example: "see [Trust entries](#trust-entries)",
  },
  "identity.trust[].kind": {
    description: "`agents`: one key per agent; `issuer`: any key of an issuer's JWKS (SPIRE).",
    example: "`issuer`",
  },
  "identity.trust[].jwks (kind: agents)": { example: "`./trust/agents.jwks.json`" },
  "identity.trust[].subjects (kind: agents)": {
    description: "Globs the token's `sub` must match.",
    example: '`["spiffe://example.org/agent/*"]`',
  },
  "identity.trust[].algorithms (kind: agents)": {
    description:
      "Allowed JWS algorithms (asymmetric only; never `none` or HMAC). Default: EdDSA, ES256, ES384, RS256, PS256.",
    example: '`["EdDSA"]`',
  },
  "identity.trust[].jwks (kind: issuer)": {
    description: "URLs must be https; keys are fetched once and cached.",
    example: "`https://spire.example.org/keys`",
  },
  "identity.trust[].issuer (kind: issuer)": {
    description: "The exact `iss` to require.",
    example: "`https://spire.example.org`",
  },
  "identity.trust[].kubernetes (kind: issuer)": {
    description:
      'For projected tokens of a Kubernetes API server. Only such subjects are accepted; the subject globs, the lease, policy (`Agent::"…"`) and the audit trail all see the SPIFFE ID.',
    example: "`{ trustDomain: cluster.local }`",
  },
  "identity.trust[].kubernetes.trustDomain (kind: issuer)": {
    description: "The trust domain of the SPIFFE IDs made from service-account subjects.",
    example: "`cluster.local`",
  },
  "identity.trust[].subjects (kind: issuer)": {
    description: "Globs the token's `sub` must match (after the `kubernetes` mapping, if set).",
    example: '`["spiffe://example.org/ns/agents/*"]`',
  },
  "identity.trust[].algorithms (kind: issuer)": {
    description:
      "Allowed JWS algorithms (asymmetric only; never `none` or HMAC). Default: EdDSA, ES256, ES384, RS256, PS256.",
    example: '`["RS256"]`',
  },
  "identity.maxTokenLifetime": { example: "`600`" },
  "identity.clockSkew": {
    description: "Seconds of clock difference tolerated on exp, iat and nbf.",
    example: "`10`",
  },
  "tokens.signingKey": {
    description:
      "Ed25519 key that signs lease tokens; created 0600 if absent (`leasehold keys rotate` adds a new one).",
    example: "`/var/lib/leasehold/signing.jwk`",
  },
  "policy.file": {
    description: "Cedar policies; `null` or a missing file denies everything. `SIGHUP` reloads it.",
    example: "`/etc/leasehold/policy.cedar`",
  },
  "audit.file": {
    description: "Records are hash-chained; the sidecar refuses checkouts while it cannot write the file.",
    example: "`/var/lib/leasehold/audit.jsonl`",
  },
  "audit.stream": {
    description:
      "A copy of the records in a Redis stream, for live readers (statement records only with `statements`).",
  },
  "admin.tokenFile": {
    description: "The operators' token (the CLI reads it); created 0600 on first start.",
    example: "`/var/lib/leasehold/admin.token`",
  },
  "rotation.maxFailures": { example: "`3`" },
  "rotation.backoff": { example: "`5`" },
  "rotation.maxBackoff": { description: "Longest retry delay, seconds.", example: "`600`" },
  "rotation.reconcileInterval": { example: "`30`" },
  "rotation.lockTtl": { example: "`15`" },
  "rotation.adapterTimeout": { example: "`20`" },
  "approvals.ttl": { example: "`3600`" },
  "reaper.intervalMs": { example: "`100`" },
  "ops.webhook": {
    example: "`{ url: https://alerts.example.org/leasehold, secret: ${LEASEHOLD_WEBHOOK_SECRET} }`",
  },
  "ops.webhook.url": { example: "`https://alerts.example.org/leasehold`" },
  "ops.webhook.secret": { example: "`${LEASEHOLD_WEBHOOK_SECRET}`" },
  "ops.webhook.events": { description: "The event types sent.", example: "`[rotation_failed, quarantined]`" },
  "log.level": { description: "pino log level; secrets are redacted at every level.", example: "`warn`" },
  resources: {
    description: "Registration files loaded at start (paths; see [Registration file](#registration-file)).",
    example: '`["./resources/orders-db.yaml"]`',
  },
  adapters: {
    description: "DBAs' own adapter modules, loaded at start besides the built-in ones.",
    example: "`[{ module: ./adapters/mainframe.js }]`",
  },
  "adapters[].module": {
    description:
      "An ES module exporting objects that implement the Adapter interface (id, config, constraints, verify, rotate, checkAccountName).",
    example: "`./adapters/mainframe.js`",
  },
};

/** Text for registration keys whose schema has no TSDoc, and examples. */
export const REGISTRATION_EXTRAS: Readonly<Record<string, KeyExtra>> = {
  name: {
    description: 'The resource\'s name in policies (`Resource::"orders-db"`), URLs and Vault paths.',
    example: "`orders-db`",
  },
  adapter: {
    description: "Which adapter rotates it: a built-in id or one from `adapters:`.",
    example: "`postgres`",
  },
  connection: {
    description: "How to reach the target; its keys are the adapter's (below). Never a password.",
    example: "`{ host: db.internal, port: 5432, database: orders }`",
  },
  rotateWith: {
    description:
      "`admin`: the admin credential changes account passwords; `self`: each account changes its own.",
    example: "`admin`",
  },
  admin: {
    description:
      "The admin credential (needed for `rotateWith: admin`). Its password is kept in Vault at `<prefix>/resources/<name>/admin`.",
    example: "`{ username: leasehold_admin }`",
  },
  "admin.username": {
    description: "An account allowed to change the managed accounts' passwords.",
    example: "`leasehold_admin`",
  },
  "admin.password": {
    description:
      "Given once; leasehold moves it into Vault and never returns it. Later registrations may leave it out.",
    example: "`${ADMIN_PASSWORD}`",
  },
  accounts: {
    description:
      "The pool: each account is leased to one agent at a time. A name, or `{ name, password }` to give its current password once.",
    example: "`[app_orders_1, app_orders_2]`",
  },
  "accounts[]": { description: "An account name, or `{ name, password }`.", example: "`app_orders_1`" },
  "accounts[].name": {
    description: "The account's name on the target (the adapter's rules apply).",
    example: "`app_orders_1`",
  },
  "accounts[].password": {
    description:
      "Its current password, given once (needed for `rotateWith: self` or `importRotation: false`); moved into Vault.",
    example: "`${APP_ORDERS_1_PASSWORD}`",
  },
  importRotation: {
    description: "Rotate every new account at registration, so that no human knows its password.",
    example: "`true`",
  },
  reveal: {
    description: "`false`: the password never leaves the sidecar; agents connect through the proxy.",
    example: "`false`",
  },
  proxy: {
    description:
      "A local listener speaking the target's protocol (postgres, mysql, redis-acl, ldap): user = lease id (LDAP: bind DN cn=<lease id>), password = lease token.",
    example: "`{ port: 15432 }`",
  },
  "proxy.port": { description: "Port on 127.0.0.1.", example: "`15432`" },
  "proxy.databases": {
    description:
      "PostgreSQL: more databases a lease may open through the listener (`dbname=`), besides `connection.database` (always allowed, and opened when the client names none); any other is refused with 42501 and audited. MySQL: the only databases a session may make its default (the handshake's, COM_INIT_DB, `USE`); any other is refused with 1044 (audited mid-session); absent: any.",
    example: "`[orders, orders_archive]`",
  },
  lease: { description: "Lease lengths for this resource (policy may cap them further)." },
  "lease.defaultTtl": { description: "Seconds, when the checkout names no `ttl`.", example: "`300`" },
  "lease.maxTtl": { description: "Seconds; longest lease and the horizon of renewals.", example: "`3600`" },
  rotation: { description: "How new passwords are made and set." },
  "rotation.length": {
    description: "Length of generated passwords (capped by the adapter's maximum).",
    example: "`32`",
  },
  "rotation.terminateSessions": {
    description: "End the account's live sessions on the target when its lease ends (adapters that can).",
    example: "`true`",
  },
  "rotation.exclude": { example: "`\"'`" },
  "rotation.admin": { example: '`{ every: "24h" }`' },
  "rotation.admin.every": {
    description:
      "How often: a whole number and a unit (`s`, `m`, `h`, `d`, `w`), at least `15m`, at most `366d`.",
    example: '`"24h"`',
  },
  groups: { example: "`[databases, finance]`" },
};

const BEGIN = (name: string) => `<!-- generated:${name} (scripts/gen-docs.ts; do not edit by hand) -->`;
const END = (name: string) => `<!-- /generated:${name} -->`;

/**
 * Replaces the text between the markers of block `name` with `content`.
 * @throws Error when the document lacks the markers.
 */
export function replaceBlock(doc: string, name: string, content: string): string {
  const begin = BEGIN(name);
  const end = END(name);
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i < 0 || j < i) throw new Error(`missing markers for block "${name}": ${begin} … ${end}`);
  return `${doc.slice(0, i + begin.length)}\n${content.trim()}\n${doc.slice(j)}`;
}

/** The repository root (scripts/ → ..). */
export function repoRoot(): string {
  return resolve(fileURLToPath(new URL("..", import.meta.url)));
}

async function source(root: string, rel: string): Promise<{ file: string; text: string }> {
  const file = join(root, rel);
  return { file, text: await readFile(file, "utf8") };
}

/** Key rows of leasehold.yaml. */
export async function configRows(root = repoRoot()): Promise<KeyRow[]> {
  const { file, text } = await source(root, "sidecar/config.ts");
  return keyRows(configSchema, fieldDocs(file, text, "configSchema"), CONFIG_EXTRAS, { topLevelRows: false });
}

/** Key rows of a registration file. */
export async function registrationRows(root = repoRoot()): Promise<KeyRow[]> {
  const { file, text } = await source(root, "sidecar/resources/types.ts");
  return keyRows(registrationSchema, fieldDocs(file, text, "registrationSchema"), REGISTRATION_EXTRAS);
}

/** Key rows of each built-in adapter's `connection`, by adapter id. */
export async function adapterRows(root = repoRoot()): Promise<Map<string, KeyRow[]>> {
  const out = new Map<string, KeyRow[]>();
  for (const id of [...builtinAdapters.keys()].sort()) {
    const adapter = builtinAdapters.get(id);
    if (!adapter) continue;
    const js = z.toJSONSchema(adapter.config, { io: "input", unrepresentable: "any" }) as Json;
    let docs = new Map<string, FieldDoc>();
    const src = await source(root, `adapters/${id}/config.ts`).catch(() => undefined);
    const name = src && exportWithKeys(src.file, src.text, Object.keys((js.properties ?? {}) as Json));
    if (src && name) docs = fieldDocs(src.file, src.text, name);
    out.set(id, keyRows(adapter.config, docs));
  }
  return out;
}

/** Groups rows under their top-level section (`listen`, `redis`, …). */
function bySection(rows: readonly KeyRow[]): Map<string, KeyRow[]> {
  const out = new Map<string, KeyRow[]>();
  for (const r of rows) {
    const section = r.key.split(/[.[]/)[0] ?? r.key;
    out.set(section, [...(out.get(section) ?? []), r]);
  }
  return out;
}

/** The generated block of docs/configuration.md: every key of leasehold.yaml. */
export async function renderConfigBlock(root = repoRoot()): Promise<string> {
  const parts: string[] = [];
  for (const [section, rows] of bySection(await configRows(root))) {
    parts.push(`### \`${section}\``, "", renderRows(rows), "");
  }
  return parts.join("\n");
}

/** The generated block of docs/configuration.md: a registration file and each adapter's connection. */
export async function renderRegistrationBlock(root = repoRoot()): Promise<string> {
  const parts = [renderRows(await registrationRows(root)), ""];
  for (const [id, rows] of await adapterRows(root)) {
    const a = builtinAdapters.get(id);
    parts.push(`#### \`adapter: ${id}\``, "");
    if (a) {
      const c = a.constraints;
      parts.push(
        `${a.description}. Passwords: ${c.minLength}–${c.maxLength} characters${c.forbidden ? `, never ${literal(c.forbidden)}` : ""}.`,
        "",
      );
    }
    parts.push(renderRows(rows), "");
  }
  return parts.join("\n");
}

const AUTH_TEXT: Record<RouteDoc["auth"], string> = {
  none: "—",
  identity: "identity JWT",
  lease: "lease token",
  admin: "admin token",
  operator: "admin token or any identity JWT",
  "operator-revoke": 'admin token or identity JWT (policy: `Action::"revoke"`)',
  "operator-approve": 'admin token or identity JWT (policy: `Action::"approve"`)',
  "operator-register": 'admin token or identity JWT (policy: `Action::"register"`)',
  "lease-or-admin": "lease token or admin token",
  "admin-if-configured": "admin token if `ops.metricsRequireToken`",
};

/** The generated blocks of docs/api.md: the route table and the error catalogue. */
export function renderApiBlocks(): { routes: string; errors: string } {
  const lines = ["| method | path | auth | success | errors | what |", "|---|---|---|---|---|---|"];
  for (const r of ROUTES) {
    const ok = Object.keys(r.responses).join(", ");
    const errors = [...new Set(routeErrors(r).map((c) => ERROR_STATUS[c]))].sort((a, b) => a - b).join(", ");
    lines.push(
      `| ${r.method} | \`${openApiPath(r.path)}\` | ${AUTH_TEXT[r.auth]} | ${ok} | ${errors} | ${cell(r.summary)} |`,
    );
  }
  const codes = ["| status | code |", "|---|---|"];
  for (const [code, status] of Object.entries(ERROR_STATUS)) codes.push(`| ${status} | \`${code}\` |`);
  return { routes: lines.join("\n"), errors: codes.join("\n") };
}

/** docs/policy.md with its generated blocks (scripts/policy-docs.ts) up to date. */
export async function generatePolicyDoc(root = repoRoot()): Promise<{ file: string; text: string }> {
  const file = join(root, "docs/policy.md");
  let text = await readFile(file, "utf8");
  for (const [name, content] of Object.entries(renderPolicyBlocks())) {
    text = replaceBlock(text, name, content);
  }
  return { file, text };
}

/** Each generated file with its up-to-date text (prose kept, blocks regenerated). */
export async function generateDocs(root = repoRoot()): Promise<Array<{ file: string; text: string }>> {
  const configFile = join(root, "docs/configuration.md");
  let config = await readFile(configFile, "utf8");
  config = replaceBlock(config, "config", await renderConfigBlock(root));
  config = replaceBlock(config, "registration", await renderRegistrationBlock(root));
  const apiFile = join(root, "docs/api.md");
  const api = renderApiBlocks();
  let apiText = await readFile(apiFile, "utf8");
  apiText = replaceBlock(apiText, "routes", api.routes);
  apiText = replaceBlock(apiText, "errors", api.errors);
  const auditFile = join(root, "docs/audit.md");
  const audit = replaceBlock(await readFile(auditFile, "utf8"), "audit-events", auditEventsMarkdown());
  return [
    { file: configFile, text: config },
    { file: apiFile, text: apiText },
    await generatePolicyDoc(root),
    { file: auditFile, text: audit },
    {
      file: join(root, "sidecar/audit/audit-record.schema.json"),
      text: `${JSON.stringify(auditRecordJsonSchema(), null, 2)}\n`,
    },
  ];
}

async function main(): Promise<void> {
  const check = process.argv.includes("--check");
  let stale = 0;
  for (const { file, text } of await generateDocs()) {
    const current = await readFile(file, "utf8");
    if (current === text) continue;
    stale++;
    if (check) process.stderr.write(`${file} is out of date: run npx tsx scripts/gen-docs.ts\n`);
    else {
      await writeFile(file, text);
      process.stdout.write(`wrote ${file}\n`);
    }
  }
  if (check && stale > 0) process.exitCode = 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`gen-docs: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
}
