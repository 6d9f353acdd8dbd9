// `agent keygen --attribute`: loaded by that command only (it needs the policy schema).
import type { BundleAttributeValue } from "../../identity/index.js";
import { AGENT_ATTRIBUTES } from "../../policy/index.js";
import { CliError } from "../cli-error.js";

/**
 * `--attribute name=value` options as the bundle's `attributes`, typed by the policy schema's
 * Agent attributes: a `Set<String>` collects every value given for its name, a `Bool` takes
 * `true` or `false`. A name the schema does not declare is refused: policy would never see it.
 */
export function keygenAttributes(options: readonly string[]): Record<string, BundleAttributeValue> {
  const out: Record<string, BundleAttributeValue> = {};
  for (const option of options) {
    const eq = option.indexOf("=");
    const name = eq > 0 ? option.slice(0, eq) : "";
    const value = option.slice(eq + 1);
    const type = Object.hasOwn(AGENT_ATTRIBUTES, name) ? AGENT_ATTRIBUTES[name] : undefined;
    if (eq <= 0) throw new CliError(`--attribute ${option}: expected name=value`);
    if (type === undefined || name === "trust_kind" || name === "iss") {
      const known = Object.keys(AGENT_ATTRIBUTES).filter((n) => n !== "trust_kind" && n !== "iss");
      throw new CliError(`--attribute ${name}: not an agent attribute policy sees (${known.join(", ")})`);
    }
    if (type === "Set<String>") {
      const prev = out[name];
      out[name] = [...(Array.isArray(prev) ? prev : []), value];
    } else if (name in out) {
      throw new CliError(`--attribute ${name}: given twice`);
    } else if (type === "Bool") {
      if (value !== "true" && value !== "false") throw new CliError(`--attribute ${name}: true or false`);
      out[name] = value === "true";
    } else if (type === "Long") {
      if (!/^-?\d{1,15}$/.test(value)) throw new CliError(`--attribute ${name}: an integer`);
      out[name] = Number(value);
    } else {
      out[name] = value;
    }
  }
  return out;
}
