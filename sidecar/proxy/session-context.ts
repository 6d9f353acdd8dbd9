import type { AuditSink } from "../audit/index.js";
import type { Logger } from "../logger.js";
import type { StoredRegistration } from "../resources/types.js";
import type { SessionRegistry } from "./session-registry.js";
import type { ProxyLeasePort, ProxySession } from "./types.js";

/** What every protocol session gets from its listener. */
export interface SessionContext {
  readonly resource: string;
  /** The registration as last synced (its connection may change while the listener runs). */
  registration(): StoredRegistration | undefined;
  readonly leases: ProxyLeasePort;
  readonly audit: AuditSink;
  readonly log: Logger;
  readonly registry: SessionRegistry;
  /** The listener's open sessions. */
  readonly live: Set<ProxySession>;
  readonly handshakeTimeoutMs: number;
  readonly maxMessageBytes: number;
}
