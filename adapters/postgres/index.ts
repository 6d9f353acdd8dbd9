export { checkRoleName } from "./account-name.js";
export { type PostgresTarget, postgresConfig } from "./config.js";
export { postgresSslOption } from "./connection.js";
export { postgresAdapter } from "./postgres-adapter.js";
export { quoteIdent, quoteLiteral } from "./quote.js";
export { type ScramVerifierOptions, scramSha256Verifier } from "./scram-verifier.js";
