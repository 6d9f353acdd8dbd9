import { ACTIONS_WITH_OWN_CONTEXT, contextTypeName, requestContextSchema } from "./context-fields.js";
import { POLICY_ACTIONS } from "./types.js";

/** Cedar type of an optional entity attribute that leasehold can fill from plain JSON. */
export type AttributeType = "String" | "Set<String>" | "Bool" | "Long";

/**
 * Optional `Agent` attributes, each filled only from who can vouch for it: `trust_kind` (the
 * trust entry's kind, `agents` or `issuer`) and `iss` (an `issuer` entry's verified issuer) by
 * the identity verifier; the others from the `attributes` beside the agent's key in its trust
 * bundle (self-signed `agents` entries: the operator's word, never the token's) or from the
 * issuer's claims of the same name (`issuer` entries). Values not declared here, or of another
 * type, are not passed to Cedar, because strict validation refuses them.
 */
export const AGENT_ATTRIBUTES: Readonly<Record<string, AttributeType>> = {
  iss: "String",
  trust_kind: "String",
  name: "String",
  team: "String",
  role: "String",
  roles: "Set<String>",
  groups: "Set<String>",
  operator: "Bool",
};

/** Optional `Resource` attributes. */
export const RESOURCE_ATTRIBUTES: Readonly<Record<string, AttributeType>> = {
  adapter: "String",
  reveal: "Bool",
};

function shape(attrs: Readonly<Record<string, AttributeType>>): string {
  return Object.entries(attrs)
    .map(([name, type]) => `  ${name}?: ${type},`)
    .join("\n");
}

/**
 * The Cedar schema every policy file is validated against (strict mode), in
 * Cedar schema syntax and with no namespace, so entity uids are exactly
 * `Agent::"spiffe://..."`, `Action::"checkout"`, `Resource::"orders-db"`.
 * Every attribute is optional: a policy tests `principal has team` before reading it.
 */
export const POLICY_SCHEMA = `${requestContextSchema()}

entity AgentGroup;
entity Agent in [AgentGroup] = {
${shape(AGENT_ATTRIBUTES)}
};

entity ResourceGroup;
entity Resource in [ResourceGroup] = {
${shape(RESOURCE_ATTRIBUTES)}
};

${actionDeclarations()}
`;

/** One declaration for the actions sharing `RequestContext`, one for each action with its own context. */
function actionDeclarations(): string {
  const own = new Set<string>(ACTIONS_WITH_OWN_CONTEXT);
  const declare = (names: readonly string[], context: string) =>
    `action ${names.join(", ")} appliesTo {\n  principal: [Agent],\n  resource: [Resource],\n  context: ${context},\n};`;
  return [
    declare(
      POLICY_ACTIONS.filter((a) => !own.has(a)),
      "RequestContext",
    ),
    ...ACTIONS_WITH_OWN_CONTEXT.map((a) => declare([a], contextTypeName(a))),
  ].join("\n\n");
}
