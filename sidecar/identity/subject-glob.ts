import picomatch from "picomatch";

/**
 * Compiles subject globs into one matcher. `*` matches within a path segment,
 * `**` across segments; `dot: true` lets `*` match segments that start with a dot.
 * @throws Error when the list is empty or a glob is empty.
 */
export function compileSubjectGlobs(globs: readonly string[]): (subject: string) => boolean {
  if (globs.length === 0) throw new Error("trust entry needs at least one subject glob");
  for (const glob of globs) {
    if (typeof glob !== "string" || glob.length === 0)
      throw new Error("subject globs must be non-empty strings");
  }
  const matchers = globs.map((glob) => picomatch(glob, { dot: true }));
  return (subject) => matchers.some((match) => match(subject));
}
