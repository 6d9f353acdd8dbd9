export {
  eventStreamKey,
  LeaseEventChannel,
  type LeaseEventChannelOptions,
  type StreamEntryFields,
  streamEntry,
} from "./lease-event-channel.js";
export {
  LEASE_EVENT_TYPES,
  type LeaseEvent,
  type LeaseEventListener,
  type LeaseEventPublisher,
  type LeaseEventType,
} from "./types.js";
