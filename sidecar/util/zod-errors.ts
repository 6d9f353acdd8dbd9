import type { z } from "zod";

/** Renders zod issues as one line that names each field and the rule it broke; never echoes values. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], root = ""): string {
  return issues
    .slice(0, 5)
    .map((issue) => {
      const path = [root, ...issue.path.map(String)].filter((p) => p !== "").join(".");
      if (issue.code === "unrecognized_keys") {
        const keys = issue.keys.map((k) => (path ? `${path}.${k}` : k));
        return `unknown key${keys.length > 1 ? "s" : ""} ${keys.map((k) => `"${k}"`).join(", ")}`;
      }
      const where = path === "" ? "(root)" : path;
      return `${where}: ${issue.message}`;
    })
    .join("; ");
}
