export { checkAclUserName } from "./account-name.js";
export { type RedisAclTarget, redisAclConfig } from "./config.js";
export { redisAclAdapter } from "./redis-acl-adapter.js";
