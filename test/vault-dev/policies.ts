import { isJsonObject } from "./go-format.js";
import type { Operation } from "./request.js";

/** Vault ACL capabilities. */
export type Capability = "create" | "read" | "update" | "patch" | "delete" | "list" | "sudo" | "deny";

const CAPABILITIES: ReadonlySet<string> = new Set([
  "create",
  "read",
  "update",
  "patch",
  "delete",
  "list",
  "sudo",
  "deny",
]);

/** Pre-0.9 `policy = "..."` shorthands. */
const LEGACY_POLICY: Record<string, Capability[]> = {
  deny: ["deny"],
  read: ["read", "list"],
  write: ["create", "read", "update", "patch", "delete", "list"],
  sudo: ["create", "read", "update", "patch", "delete", "list", "sudo"],
};

/** One `path "..." { capabilities = [...] }` stanza. */
export interface PolicyRule {
  readonly path: string;
  readonly capabilities: ReadonlySet<Capability>;
}

/** A policy text that is neither the HCL subset nor JSON understood here. */
export class PolicyParseError extends Error {}

/**
 * Parses the HCL subset Vault policies use (`path "x/*" { capabilities = ["read"] }`,
 * `#`, `//` and block comments, legacy `policy = "read"`) or the JSON form
 * `{"path": {"x/*": {"capabilities": ["read"]}}}`.
 */
export function parsePolicy(text: string): PolicyRule[] {
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) return parseJsonPolicy(trimmed);
  const source = trimmed.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|\s)(#|\/\/)[^\n]*/g, "$1");
  const rules: PolicyRule[] = [];
  const stanza = /path\s+"((?:[^"\\]|\\.)*)"\s*\{([^{}]*)\}/gy;
  let rest = source.trim();
  while (rest.length > 0) {
    stanza.lastIndex = 0;
    const match = stanza.exec(rest);
    if (!match) throw new PolicyParseError(`unexpected input near ${JSON.stringify(rest.slice(0, 30))}`);
    rules.push({ path: match[1] ?? "", capabilities: parseBlock(match[2] ?? "") });
    rest = rest.slice(match[0].length).trim();
  }
  return rules;
}

function parseBlock(block: string): Set<Capability> {
  const capabilities = new Set<Capability>();
  const list = /capabilities\s*=\s*\[([^\]]*)\]/.exec(block);
  if (list) {
    for (const item of (list[1] ?? "").matchAll(/"([^"]*)"/g)) addCapability(capabilities, item[1] ?? "");
  }
  const legacy = /policy\s*=\s*"([^"]*)"/.exec(block);
  for (const capability of LEGACY_POLICY[legacy?.[1] ?? ""] ?? []) capabilities.add(capability);
  return capabilities;
}

function parseJsonPolicy(text: string): PolicyRule[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new PolicyParseError(err instanceof Error ? err.message : String(err));
  }
  if (!isJsonObject(value) || !isJsonObject(value.path)) throw new PolicyParseError('missing "path" object');
  const rules: PolicyRule[] = [];
  for (const [path, body] of Object.entries(value.path)) {
    const capabilities = new Set<Capability>();
    if (isJsonObject(body)) {
      if (Array.isArray(body.capabilities)) {
        for (const item of body.capabilities) if (typeof item === "string") addCapability(capabilities, item);
      }
      if (typeof body.policy === "string") {
        for (const capability of LEGACY_POLICY[body.policy] ?? []) capabilities.add(capability);
      }
    }
    rules.push({ path, capabilities });
  }
  return rules;
}

function addCapability(into: Set<Capability>, name: string): void {
  const lower = name.trim().toLowerCase();
  if (CAPABILITIES.has(lower)) into.add(lower as Capability);
}

/** The capability an operation needs; updates need `create` when the target does not exist yet. */
export function requiredCapability(operation: Operation, exists: boolean): Capability {
  switch (operation) {
    case "read":
      return "read";
    case "list":
      return "list";
    case "delete":
      return "delete";
    case "patch":
      return "patch";
    case "update":
      return exists ? "update" : "create";
  }
}

interface CompiledRule {
  readonly pattern: string;
  readonly capabilities: Set<Capability>;
  readonly matcher: RegExp;
}

/**
 * The merged ACL of a token's policies. Exact paths win; otherwise the most specific
 * glob (`*` suffix) or segment wildcard (`+`) wins, using Vault's priority order.
 */
export class Acl {
  private readonly rules: CompiledRule[];

  constructor(rules: readonly PolicyRule[]) {
    const byPattern = new Map<string, CompiledRule>();
    for (const rule of rules) {
      const existing = byPattern.get(rule.path);
      if (existing) {
        for (const capability of rule.capabilities) existing.capabilities.add(capability);
      } else {
        byPattern.set(rule.path, {
          pattern: rule.path,
          capabilities: new Set(rule.capabilities),
          matcher: compilePattern(rule.path),
        });
      }
    }
    this.rules = [...byPattern.values()];
  }

  /** True when the best-matching rule grants `capability` and does not deny. */
  allows(path: string, capability: Capability, isList: boolean): boolean {
    const rule = this.bestRule(path, isList);
    if (!rule || rule.capabilities.has("deny")) return false;
    return rule.capabilities.has(capability);
  }

  /**
   * What `sys/capabilities-self` reports for `path` (Vault's `ACL.Capabilities`): the best rule's
   * capabilities, looked up as a list operation (so `x/` also matches the exact rule `x`);
   * `["deny"]` when the rule denies or grants nothing. Sorted by the caller.
   */
  capabilities(path: string): Capability[] {
    const rule = this.bestRule(path, true);
    if (!rule || rule.capabilities.has("deny") || rule.capabilities.size === 0) return ["deny"];
    return [...rule.capabilities];
  }

  private bestRule(path: string, isList: boolean): CompiledRule | undefined {
    const exact = this.rules.find(
      (r) =>
        !hasWildcard(r.pattern) && (r.pattern === path || (isList && r.pattern === path.replace(/\/$/, ""))),
    );
    if (exact) return exact;
    let best: CompiledRule | undefined;
    for (const rule of this.rules) {
      if (!hasWildcard(rule.pattern) || !rule.matcher.test(path)) continue;
      if (!best || comparePriority(rule.pattern, best.pattern) > 0) best = rule;
    }
    return best;
  }
}

function hasWildcard(pattern: string): boolean {
  return pattern.endsWith("*") || pattern.split("/").includes("+");
}

function compilePattern(pattern: string): RegExp {
  const glob = pattern.endsWith("*");
  const body = glob ? pattern.slice(0, -1) : pattern;
  const source = body
    .split("/")
    .map((segment) => (segment === "+" ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("/");
  return new RegExp(`^${source}${glob ? "" : "$"}`);
}

/** Positive when `a` beats `b` (Vault's documented priority rules for non-exact paths). */
function comparePriority(a: string, b: string): number {
  const firstWildcard = (p: string): number => {
    const plus = p.split("/").indexOf("+");
    const plusIndex = plus === -1 ? Number.POSITIVE_INFINITY : p.split("/").slice(0, plus).join("/").length;
    const starIndex = p.endsWith("*") ? p.length - 1 : Number.POSITIVE_INFINITY;
    return Math.min(plusIndex, starIndex);
  };
  const wa = firstWildcard(a);
  const wb = firstWildcard(b);
  if (wa !== wb) return wa > wb ? 1 : -1;
  const sa = a.endsWith("*");
  const sb = b.endsWith("*");
  if (sa !== sb) return sa ? -1 : 1;
  const pa = a.split("/").filter((s) => s === "+").length;
  const pb = b.split("/").filter((s) => s === "+").length;
  if (pa !== pb) return pa < pb ? 1 : -1;
  if (a.length !== b.length) return a.length > b.length ? 1 : -1;
  return a > b ? 1 : a < b ? -1 : 0;
}

/** Vault's built-in `default` policy, reduced to the paths this server serves. */
export const DEFAULT_POLICY = `
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/capabilities-self" { capabilities = ["update"] }
path "sys/wrapping/wrap" { capabilities = ["update"] }
path "sys/wrapping/lookup" { capabilities = ["update"] }
path "sys/wrapping/unwrap" { capabilities = ["update"] }
path "sys/renew" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }
`;

/** The policy of response-wrapping tokens: they may only be unwrapped or looked up. */
export const RESPONSE_WRAPPING_POLICY = `
path "sys/wrapping/unwrap" { capabilities = ["update"] }
path "sys/wrapping/lookup" { capabilities = ["update"] }
`;

/** Built-in policy names that always exist. */
export const BUILTIN_POLICIES: readonly string[] = ["default", "root", "response-wrapping"];

/** Named policies: the built-ins plus those from options or `sys/policy` writes. */
export class PolicyStore {
  constructor(
    /** name → policy text, the persisted part (built-ins are not stored here). */
    private readonly custom: Record<string, string>,
    private readonly onChange: () => void,
  ) {}

  /** True for built-ins and stored policies. */
  has(name: string): boolean {
    return BUILTIN_POLICIES.includes(name) || Object.hasOwn(this.custom, name);
  }

  /** The policy text, `""` for root, `undefined` when unknown. */
  get(name: string): string | undefined {
    if (name === "root") return "";
    if (name === "default") return this.custom.default ?? DEFAULT_POLICY;
    if (name === "response-wrapping") return RESPONSE_WRAPPING_POLICY;
    return this.custom[name];
  }

  /** Sorted names, as `sys/policy` lists them. */
  names(): string[] {
    return [...new Set([...Object.keys(this.custom), "default", "root"])].sort();
  }

  /** Stores a policy after checking that it parses; throws {@link PolicyParseError}. */
  set(name: string, text: string): void {
    parsePolicy(text);
    this.custom[name] = text;
    this.onChange();
  }

  /** Removes a stored policy (built-ins are refused by the caller). */
  delete(name: string): void {
    delete this.custom[name];
    this.onChange();
  }

  /** The ACL for a token's policies; `root` is handled by the caller. */
  acl(policyNames: readonly string[]): Acl {
    const rules: PolicyRule[] = [];
    for (const name of policyNames) {
      const text = this.get(name);
      if (text === undefined || name === "root") continue;
      try {
        rules.push(...parsePolicy(text));
      } catch {
        // A policy that stopped parsing grants nothing, as an unknown policy would.
      }
    }
    return new Acl(rules);
  }
}
