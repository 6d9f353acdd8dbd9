/** The admin-token check of the route table's auth step, for the ops module's callers. */
export { requireAdminToken } from "../http/credentials.js";
