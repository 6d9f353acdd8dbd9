export { checkAclUserName } from "./account-name.js";
export { type RedisAclTarget, redisAclConfig } from "./config.js";
export { type RedisAddress, redisConnectionOptions } from "./connection.js";
export { redisAclAdapter } from "./redis-acl-adapter.js";
