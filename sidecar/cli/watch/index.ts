export {
  type WatchOptions,
  type WatchOutput,
  watchCommand,
  watchTargetFromConfig,
} from "./watch-command.js";
