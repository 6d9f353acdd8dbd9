/** A MySQL account: the user name and the host pattern it may connect from. */
export interface MysqlAccount {
  readonly user: string;
  readonly host: string;
}

/** MariaDB's limit (MySQL 8 allows 32 and refuses longer names itself). */
const MAX_USER_CHARS = 80;
const MAX_HOST_CHARS = 255;
/** Host names, IPv4/IPv6 addresses, netmasks and the `%` / `_` wildcards. */
const HOST_PATTERN = /^[A-Za-z0-9._%:/-]+$/;

/**
 * Splits `user` (host `%`) or `user@host` at the last `@`: host patterns never hold one,
 * so a user name may (`a@b@%` is user `a@b`, host `%`).
 */
export function parseAccount(name: string): MysqlAccount {
  const at = name.lastIndexOf("@");
  return at < 0 ? { user: name, host: "%" } : { user: name.slice(0, at), host: name.slice(at + 1) };
}

/** `user@host`, the form CURRENT_USER() returns. */
export function formatAccount(account: MysqlAccount): string {
  return `${account.user}@${account.host}`;
}

/**
 * Checks that `name` names one account exactly. User names may hold any character of the
 * Basic Multilingual Plane (they are always quoted), but not NUL, characters beyond it
 * (the grant tables use 3-byte utf8) or trailing spaces (CHAR comparison ignores them);
 * the host must be a host name, address or pattern. Returns the problem or null.
 */
export function checkMysqlAccountName(name: string): string | null {
  if (name.length === 0) return "account name is empty";
  if (name.includes("\0")) return "account name contains a NUL character";
  const { user, host } = parseAccount(name);
  if (user.length === 0) return "user part is empty (anonymous accounts are not managed)";
  if ([...user].length > MAX_USER_CHARS) return `user name is longer than ${MAX_USER_CHARS} characters`;
  if (/[\u{10000}-\u{10FFFF}]/u.test(user))
    return "user name holds a character outside the Basic Multilingual Plane";
  if (user.endsWith(" ")) return "user name ends with a space (the server would ignore it)";
  if (host.length === 0) return "host part after @ is empty";
  if (host.length > MAX_HOST_CHARS) return `host part is longer than ${MAX_HOST_CHARS} characters`;
  if (!HOST_PATTERN.test(host))
    return "host part must be a host name, IP address or pattern (letters, digits, . - _ % : /)";
  return null;
}
