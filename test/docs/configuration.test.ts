import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { builtinAdapters } from "../../adapters/registry.js";
import { configSchema, parseConfig } from "../../sidecar/config.js";
import { registrationSchema } from "../../sidecar/resources/types.js";
import {
  adapterRows,
  configRows,
  fieldDocs,
  generateDocs,
  type KeyRow,
  keyRows,
  registrationRows,
  replaceBlock,
  repoRoot,
} from "../../scripts/gen-docs.js";

const root = repoRoot();

/** The fenced YAML block that follows `<!-- example:NAME … -->` in a document. */
function example(doc: string, name: string): unknown {
  const at = doc.indexOf(`<!-- example:${name}`);
  expect(at, `example ${name} is marked`).toBeGreaterThanOrEqual(0);
  const m = /```yaml\n([\s\S]*?)```/.exec(doc.slice(at));
  if (!m?.[1]) throw new Error(`no yaml block after example ${name}`);
  return parseYaml(m[1]);
}

/** Rows that are leaves (not objects with rows of their own below them). */
function leaves(rows: readonly KeyRow[]): KeyRow[] {
  return rows.filter(
    (r) => !rows.some((o) => o !== r && (o.key.startsWith(`${r.key}.`) || o.key.startsWith(`${r.key}[]`))),
  );
}

describe("generated reference docs", () => {
  it("docs/configuration.md and docs/api.md are what scripts/gen-docs.ts generates (run it after a schema change)", async () => {
    for (const { file, text } of await generateDocs(root)) {
      const current = await readFile(file, "utf8");
      expect(current, `${file} is out of date: run npx tsx scripts/gen-docs.ts`).toBe(text);
    }
  });

  it("lists every key of leasehold.yaml, with a description and an example or default", async () => {
    const rows = await configRows(root);
    const keys = new Set(rows.map((r) => r.key));
    // Keys of every section of the schema appear (the schema is the source, not this list).
    for (const section of Object.keys(z.toJSONSchema(configSchema, { io: "input" }).properties ?? {})) {
      expect(
        [...keys].some((k) => k === section || k.startsWith(`${section}.`) || k.startsWith(`${section}[`)),
      ).toBe(true);
    }
    expect(keys).toContain("vault.auth.jwtFile");
    expect(keys).toContain("identity.trust[].issuer");
    expect(rows.filter((r) => r.description === "").map((r) => r.key)).toEqual([]);
    const undocumented = leaves(rows).filter(
      (r) => r.example === undefined && !r.hasDefault && r.tsdocDefault === undefined,
    );
    expect(undocumented.map((r) => `${r.key} ${r.when}`.trim())).toEqual([]);
  });

  it("lists every key of a registration file and of each built-in adapter's connection", async () => {
    const rows = await registrationRows(root);
    expect(rows.map((r) => r.key)).toEqual(
      expect.arrayContaining([
        "name",
        "adapter",
        "connection",
        "admin.password",
        "accounts[].name",
        "lease.maxTtl",
      ]),
    );
    expect(rows.filter((r) => r.description === "").map((r) => r.key)).toEqual([]);
    const bare = leaves(rows).filter(
      (r) => r.example === undefined && !r.hasDefault && r.tsdocDefault === undefined,
    );
    expect(bare.map((r) => r.key)).toEqual([]);
    const adapters = await adapterRows(root);
    expect([...adapters.keys()].sort()).toEqual([...builtinAdapters.keys()].sort());
    const pg = adapters.get("postgres") ?? [];
    expect(pg.find((r) => r.key === "port")?.default).toBe(5432);
    expect(pg.find((r) => r.key === "host")?.description).toBe("Server host name or IP address.");
  });

  it("every TSDoc @default agrees with the schema's default", async () => {
    const all = [
      ...(await configRows(root)),
      ...(await registrationRows(root)),
      ...[...(await adapterRows(root)).values()].flat(),
    ];
    const disagreeing: string[] = [];
    let compared = 0;
    for (const r of all) {
      if (r.tsdocDefault === undefined || !r.hasDefault) continue;
      let said: unknown;
      try {
        said = JSON.parse(r.tsdocDefault);
      } catch {
        continue; // prose such as "no TLS"
      }
      compared++;
      if (JSON.stringify(said) !== JSON.stringify(r.default)) {
        disagreeing.push(`${r.key}: TSDoc says ${r.tsdocDefault}, the schema ${JSON.stringify(r.default)}`);
      }
    }
    expect(disagreeing).toEqual([]);
    expect(compared).toBeGreaterThan(20);
  });

  it("the examples in docs/configuration.md pass the sidecar's own validation", async () => {
    const doc = await readFile(join(root, "docs/configuration.md"), "utf8");
    const cfg = parseConfig(example(doc, "leasehold.yaml"), "/etc/leasehold", {
      VAULT_ROLE_ID: "role",
      VAULT_SECRET_ID: "secret",
    });
    expect(cfg.vault.auth.method).toBe("approle");
    expect(cfg.identity.trust).toHaveLength(2);
    const reg = registrationSchema.parse(example(doc, "registration"));
    const adapter = builtinAdapters.get(reg.adapter);
    expect(adapter?.config.safeParse(reg.connection).success).toBe(true);
  });

  it("reads TSDoc through constants, unions and discriminated unions; refuses docs for unknown keys", () => {
    const src = `import { z } from "zod";
const inner = z.strictObject({
  /** The depth. @default 3 */
  depth: z.number().default(3),
});
const auth = z.discriminatedUnion("method", [
  z.strictObject({
    method: z.literal("a"),
    /** Only for a. */
    x: z.string(),
  }),
  z.strictObject({
    method: z.literal("b"),
    /** Only for b. */
    x: z.number(),
  }),
]);
export const s = z.strictObject({
  /** Nested. */
  inner: inner.prefault({}),
  auth,
  list: z.array(z.union([z.string(), inner])),
});`;
    const docs = fieldDocs("x.ts", src, "s");
    expect(docs.get("inner/depth")).toEqual({ text: "The depth.", tsdocDefault: "3" });
    expect(docs.get("auth/{method=a}/x")?.text).toBe("Only for a.");
    expect(docs.get("auth/{method=b}/x")?.text).toBe("Only for b.");
    expect(docs.get("list/[]/depth")?.text).toBe("The depth.");
    const schema = z.strictObject({ a: z.string() });
    expect(() => keyRows(schema, new Map(), { b: { description: "no such key" } })).toThrow(
      /do not exist: b/,
    );
  });

  it("replaces only the text between a block's markers", () => {
    const doc =
      "intro\n<!-- generated:x (scripts/gen-docs.ts; do not edit by hand) -->\nold\n<!-- /generated:x -->\noutro\n";
    expect(replaceBlock(doc, "x", "new")).toBe(
      "intro\n<!-- generated:x (scripts/gen-docs.ts; do not edit by hand) -->\nnew\n<!-- /generated:x -->\noutro\n",
    );
    expect(() => replaceBlock("nothing", "x", "new")).toThrow(/missing markers/);
  });
});
