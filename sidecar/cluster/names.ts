import type { Config } from "../config.js";

/** The cluster's Redis keyspace as messages name it: where, and the prefix; never a password. */
export function redisKeyspaceName(config: Config["redis"]): string {
  let where: string;
  if (config.cluster?.length) where = `cluster ${config.cluster.join(",")}`;
  else {
    const url = new URL(config.url);
    const db = url.pathname.replace(/^\//, "") || "0";
    where = config.sentinel ? `sentinel ${config.sentinel.name}/${db}` : `${url.host}/${db}`;
  }
  return `redis ${where} prefix "${config.prefix}"`;
}

/** The cluster's Vault prefix as messages name it: address, KV mount and prefix; never a token. */
export function vaultPrefixName(config: Config["vault"]): string {
  const url = new URL(config.address);
  return `vault ${url.origin} ${config.mount}/${config.prefix}`;
}
