/** One method and path of a fastify app. */
export interface AppRoute {
  readonly method: string;
  readonly path: string;
}

/**
 * The routes of a ready fastify app, read from `printRoutes({ commonPrefix: false })`: a tree
 * whose lines are `├── /segment (GET, HEAD)` with four columns of indent per level. HEAD routes
 * fastify adds for GET are left out.
 */
export function parseRouteTree(tree: string): AppRoute[] {
  const out: AppRoute[] = [];
  const stack: string[] = [];
  for (const line of tree.split("\n")) {
    const m = /^(.*?)(?:├── |└── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = (m[1] ?? "").length / 4;
    stack.length = depth;
    stack.push(m[2] ?? "");
    const methods = (m[3] ?? "").split(",").map((s) => s.trim());
    for (const method of methods) {
      if (method === "" || method === "HEAD") continue;
      out.push({ method, path: stack.join("") });
    }
  }
  return out;
}
