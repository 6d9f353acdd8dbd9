import type { Redis } from "ioredis";
import type { Verdict } from "../adapter.js";
import { AdapterError } from "../adapter.js";
import type { RedisAclTarget } from "./config.js";
import { command } from "./connection.js";

/**
 * What `ACL DRYRUN <admin> <command...>` says: "OK", Redis's own words for a refusal, or
 * undefined when it cannot tell (Redis 6 has no DRYRUN; the admin may not run it).
 */
async function dryRun(
  redis: Redis,
  admin: string,
  args: readonly string[],
  deadline: number,
): Promise<string | undefined> {
  try {
    const answer = await command(redis, ["ACL", "DRYRUN", admin, ...args], deadline, "ACL DRYRUN");
    return typeof answer === "string"
      ? answer
      : Buffer.isBuffer(answer)
        ? answer.toString("utf8")
        : undefined;
  } catch (err) {
    if (err instanceof AdapterError && (err.code === "privilege" || err.code === "failed")) return undefined;
    throw err;
  }
}

/**
 * As the admin on `redis`: the ACL user exists (`ACL GETUSER`; never created), and the admin
 * may run what rotation runs (`ACL SETUSER`, and `ACL SAVE` with `persist: aclfile`), where
 * `ACL DRYRUN` can tell. Reasons are Redis's own words; none holds a password.
 * @throws AdapterError for faults.
 */
export async function checkUserAsAdmin(
  redis: Redis,
  target: RedisAclTarget,
  user: string,
  admin: string,
  deadline: number,
): Promise<Verdict> {
  let found: unknown;
  try {
    found = await command(redis, ["ACL", "GETUSER", user], deadline, "ACL GETUSER");
  } catch (err) {
    if (err instanceof AdapterError && err.code === "privilege") {
      return {
        valid: false,
        reason: `admin "${admin}" may not run ACL GETUSER (NOPERM), which every rotation runs first`,
      };
    }
    throw err;
  }
  if (found === null)
    return { valid: false, reason: `ACL user "${user}" does not exist (ACL GETUSER found none)` };
  const needed: string[][] = [["ACL", "SETUSER", user]];
  if (target.persist === "aclfile") needed.push(["ACL", "SAVE"]);
  for (const args of needed) {
    const answer = await dryRun(redis, admin, args, deadline);
    if (answer !== undefined && answer !== "OK") return { valid: false, reason: answer.slice(0, 300) };
  }
  return { valid: true };
}
