/** Request codes of the untyped first packets (PostgreSQL protocol, "Message Formats"). */
export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
export const CANCEL_REQUEST = 80877102;
/** Protocol 3.0 as sent in a StartupMessage. */
export const PROTOCOL_3_0 = 3 << 16;
/** The server's own cap on a startup packet (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_BYTES = 10_000;

/** The SQLSTATEs the proxy answers with. */
export const SQLSTATE = {
  invalidPassword: "28P01",
  invalidAuthorization: "28000",
  protocolViolation: "08P01",
  connectionFailure: "08006",
  adminShutdown: "57P01",
  featureNotSupported: "0A000",
  tooManyConnections: "53300",
  configurationLimitExceeded: "53400",
  insufficientPrivilege: "42501",
} as const;

/** Message type bytes. */
export const MSG = {
  query: 0x51, // 'Q'
  parse: 0x50, // 'P'
  functionCall: 0x46, // 'F' (the fast-path interface: a function by OID, no SQL text)
  execute: 0x45, // 'E' from the client (from the server the same byte is an ErrorResponse)
  password: 0x70, // 'p'
  auth: 0x52, // 'R'
  error: 0x45, // 'E'
  notice: 0x4e, // 'N'
  parameterStatus: 0x53, // 'S'
  backendKeyData: 0x4b, // 'K'
  readyForQuery: 0x5a, // 'Z'
  negotiateProtocol: 0x76, // 'v'
} as const;
