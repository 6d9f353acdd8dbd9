// The light half of config loading: reading the file and expanding `${NAME}`. No schema (zod)
// nor YAML parser here, so the CLI's client commands can read their few settings without loading config.ts.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";

/** A configuration file that cannot be used; the message names the key and the rule. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * `value` with each `${NAME}` in its strings replaced by the environment's value; a missing
 * variable is an error naming the key (`path`) and the variable. Callers that need only part
 * of a config expand only that part, so an unrelated unset variable is no error for them.
 */
export function expandEnv(value: unknown, env: NodeJS.ProcessEnv, path: string): unknown {
  if (typeof value === "string") {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
      const v = env[name];
      if (v === undefined) throw new ConfigError(`${path}: environment variable ${name} is not set`);
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, `${path}[${i}]`));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, path ? `${path}.${k}` : k)]),
    );
  }
  return value;
}

/**
 * A config file as parsed YAML (or JSON), not yet expanded nor validated, and its folder.
 * `parseYaml` is the `yaml` package's `parse`, passed in so that a caller that may never read a
 * file loads that package only when it does.
 */
export function readConfigFile(
  file: string,
  parseYaml: (text: string) => unknown,
): { readonly raw: unknown; readonly dir: string } {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, "utf8");
  } catch (err) {
    throw new ConfigError(
      `cannot read config file ${abs}: ${(err as NodeJS.ErrnoException).code ?? "error"}`,
    );
  }
  try {
    return { raw: parseYaml(text), dir: dirname(abs) };
  } catch (err) {
    throw new ConfigError(`config file ${abs} is not valid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
}

/** The config file named by --config, else LEASEHOLD_CONFIG, else ./leasehold.yaml. */
export function configPathFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.LEASEHOLD_CONFIG ?? "leasehold.yaml";
}
