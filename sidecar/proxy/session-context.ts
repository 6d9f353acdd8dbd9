import type { CallerAttestor } from "../attest/index.js";
import type { AuditSink } from "../audit/index.js";
import type { Logger } from "../logger.js";
import type { HandshakeSlots } from "./handshake-slots.js";
import type { StoredRegistration } from "../resources/types.js";
import type { LeaseLimits } from "./session-limits.js";
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
  /** The listener's slots for connections still logging in. */
  readonly handshakes: HandshakeSlots;
  /** Time from connecting to a spliced session, ms. */
  readonly handshakeTimeoutMs: number;
  /** Authenticated connections one lease may hold at once. */
  readonly maxConnectionsPerLease: number;
  readonly maxMessageBytes: number;
  /** Attests the process at the other end of a client connection. */
  readonly attestor?: CallerAttestor | undefined;
  /** The leases' counters under `proxy.limits` (per process). */
  readonly leaseLimits?: LeaseLimits | undefined;
}
