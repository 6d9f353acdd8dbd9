/**
 * The generated blocks of docs/policy.md, rendered from the tables the sidecar decides with.
 * Kept apart from gen-docs.ts so a test can check the policy reference without loading the
 * whole API and config surface.
 */
import {
  AGENT_ATTRIBUTES,
  type AttributeType,
  cedarTypeOf,
  type ContextField,
  POLICY_CONTEXT_FIELDS,
  POLICY_SCHEMA,
  RESOURCE_ATTRIBUTES,
} from "../sidecar/policy/index.js";

/** Names of the generated blocks of docs/policy.md. */
export type PolicyBlock = "policy-context" | "policy-attributes" | "policy-schema";

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

/** What an offline check (`policy check`, operator actions) puts in a field the request leaves out. */
function offlineText(f: ContextField): string {
  if (f.optional) return "absent";
  if (f.type === "Record") return `\`${JSON.stringify(f.offline)}\``;
  return typeof f.offline === "function"
    ? "computed from the check's clock"
    : `\`${JSON.stringify(f.offline)}\``;
}

function contextTable(): string {
  const lines = [
    "| field | Cedar type | present | value on a request | default in an offline check |",
    "|---|---|---|---|---|",
  ];
  for (const [name, f] of Object.entries<ContextField>(POLICY_CONTEXT_FIELDS)) {
    const only = "actions" in f && f.actions ? f.actions : undefined;
    const present = f.optional
      ? `optional: test \`context has ${name}\``
      : only
        ? `always, in the context of ${only.map((a) => `\`Action::"${a}"\``).join(", ")} only`
        : "always";
    const doc =
      f.type === "Record"
        ? `${f.doc} ${Object.entries(f.members)
            .map(([m, d]) => `\`${name}.${m}\` (\`${d.type}\`): ${d.doc}`)
            .join(" ")}`
        : f.doc;
    lines.push(
      `| \`${name}\` | \`${cedarTypeOf(f)}\` | ${cell(present)} | ${cell(doc)} | ${cell(offlineText(f))} |`,
    );
  }
  return lines.join("\n");
}

function attributeTable(attrs: Readonly<Record<string, AttributeType>>): string {
  const lines = ["| attribute | Cedar type |", "|---|---|"];
  for (const [name, type] of Object.entries(attrs)) lines.push(`| \`${name}\` | \`${type}\` |`);
  return lines.join("\n");
}

/** Each generated block of docs/policy.md: the context fields, the entity attributes, the schema. */
export function renderPolicyBlocks(): Readonly<Record<PolicyBlock, string>> {
  return {
    "policy-context": contextTable(),
    "policy-attributes": [
      "#### `Agent` (`principal`)",
      "",
      attributeTable(AGENT_ATTRIBUTES),
      "",
      "#### `Resource` (`resource`)",
      "",
      attributeTable(RESOURCE_ATTRIBUTES),
    ].join("\n"),
    "policy-schema": `\`\`\`cedarschema\n${POLICY_SCHEMA.trim()}\n\`\`\``,
  };
}
