/** @deprecated import OpsConfig from config.ts (which owns the whole schema); removed once attach-ops.ts moved */
export type { OpsConfig } from "../config.js";
