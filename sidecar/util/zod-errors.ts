import type { z } from "zod";

/**
 * Renders zod issues as one line that names each field and the rule it broke; never echoes values.
 * `suggest`, when given, names the key an unknown key was probably meant to be (the path is the
 * unknown key's object): `unknown key "listen.hots" (did you mean "listen.host"?)`.
 */
export function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  root = "",
  suggest?: (path: readonly PropertyKey[], key: string) => string | undefined,
): string {
  return issues
    .slice(0, 5)
    .map((issue) => {
      const path = [root, ...issue.path.map(String)].filter((p) => p !== "").join(".");
      if (issue.code === "unrecognized_keys") {
        const full = (k: string) => (path ? `${path}.${k}` : k);
        const keys = issue.keys.map((k) => {
          const near = suggest?.(issue.path, k);
          return `"${full(k)}"${near === undefined ? "" : ` (did you mean "${full(near)}"?)`}`;
        });
        return `unknown key${keys.length > 1 ? "s" : ""} ${keys.join(", ")}`;
      }
      const where = path === "" ? "(root)" : path;
      return `${where}: ${issue.message}`;
    })
    .join("; ");
}
