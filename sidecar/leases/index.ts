export { LeaseStore, type LeaseStoreOptions } from "./lease-store.js";
export type * from "./types.js";
export { Reaper, type ReaperOptions } from "./reaper.js";
