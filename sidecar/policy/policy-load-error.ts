/** A policy set that does not parse or does not validate against the schema. */
export class PolicyLoadError extends Error {
  /** One entry per Cedar message, with line and column when known. */
  readonly errors: readonly string[];

  constructor(source: string, errors: readonly string[]) {
    super(`policy ${source} is invalid: ${errors.join("; ")}`);
    this.name = "PolicyLoadError";
    this.errors = errors;
  }
}
