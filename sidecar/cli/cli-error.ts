/** A user-facing failure: printed as one line, exit 1. */
export class CliError extends Error {}
