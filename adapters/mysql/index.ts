export {
  checkMysqlAccountName,
  formatAccount,
  type MysqlAccount,
  parseAccount,
} from "./account.js";
export { type MysqlTarget, mysqlConfig } from "./config.js";
export { mysqlSslOption } from "./connection.js";
export { mysqlAdapter } from "./mysql-adapter.js";
export { alterUserPassword, setOwnPassword } from "./password-statements.js";
export { hasNoBackslashEscapes, quoteAccount, quoteIdentifier, quoteString } from "./quote.js";
